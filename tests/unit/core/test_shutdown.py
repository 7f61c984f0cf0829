"""Shutdown: one ordered stop for SIGTERM, SIGINT and a closed lifeline."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import uvicorn

from controller.core.shutdown import QuietServer, Shutdown


def server() -> QuietServer:
    return QuietServer(uvicorn.Config(app=lambda *a: None))


async def test_a_request_while_starting_cancels_the_block_which_ends_normally() -> None:
    reached_the_end = False
    async with Shutdown() as shutdown:
        shutdown.request("SIGTERM")
        try:
            await asyncio.sleep(10)
        finally:
            reached_the_end = True  # an ``async with`` inside unwinds here
    assert reached_the_end
    assert shutdown.reason == "SIGTERM"
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


async def test_while_serving_the_api_is_asked_to_finish_and_a_second_request_forces_it() -> None:
    api = server()
    async with Shutdown() as shutdown:
        with shutdown.serving(api):
            shutdown.request("SIGTERM")
            assert (api.should_exit, api.force_exit) == (True, False)
            await asyncio.sleep(0)  # not cancelled: the code after the API unwinds the rest
            shutdown.request("SIGINT")
            assert api.force_exit
        assert shutdown.reason == "SIGTERM"


async def test_a_request_before_the_api_serves_stops_it_at_once() -> None:
    api = server()
    async with Shutdown() as shutdown:
        shutdown.request("SIGTERM")
        with shutdown.serving(api):
            assert api.should_exit
        await asyncio.sleep(10)
    assert shutdown.reason == "SIGTERM"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_real_signal_is_one_request(sig: signal.Signals) -> None:
    async with Shutdown() as shutdown:
        os.kill(os.getpid(), sig)
        await asyncio.sleep(10)
    assert shutdown.reason == sig.name


async def test_the_handlers_are_removed_after_the_block() -> None:
    async with Shutdown():
        pass
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


async def failing_after_a_request() -> None:
    async with Shutdown() as shutdown:
        shutdown.request("SIGTERM")
        raise RuntimeError("boom")


async def test_an_error_inside_is_not_swallowed() -> None:
    with pytest.raises(RuntimeError):
        await failing_after_a_request()
    await asyncio.sleep(0)  # and no cancellation is left pending for the caller


def test_a_loop_outside_the_main_thread_gets_no_signal_handlers() -> None:
    from tests.conftest import run_blocking

    async def stopped() -> str | None:
        async with Shutdown() as shutdown:
            shutdown.request("the owner")
            await asyncio.sleep(10)
        return shutdown.reason

    assert run_blocking(stopped) == "the owner"
