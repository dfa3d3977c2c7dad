"""What the host learns from a FunctionApp, and what it refuses to run."""

from __future__ import annotations

import azure.functions as func

from devhost.catalog import build_catalog, split_disabled


def _app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="ok/{id:int}", methods=["GET"])
    @app.queue_output(arg_name="out", queue_name="normalize", connection="AzureWebJobsStorage")
    def ok(req: func.HttpRequest, out: func.Out[str], context: func.Context) -> str:
        return "x"

    @app.route(route="bad/{id:nosuch}")
    def bad_route(req: func.HttpRequest) -> str:
        return "x"

    @app.timer_trigger(arg_name="t", schedule="every minute")
    def bad_timer(t: func.TimerRequest) -> None:
        return None

    @app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    async def consume(msg: func.QueueMessage) -> None:
        return None

    @app.event_hub_message_trigger(arg_name="e", event_hub_name="h", connection="EH")
    def hub(e: func.EventHubEvent) -> None:
        return None

    return app


def test_runnable_functions_are_described_and_the_rest_skipped_with_reasons() -> None:
    specs, skipped = build_catalog(_app())
    by_name = {s.name: s for s in specs}
    assert set(by_name) == {"ok", "consume"}
    ok = by_name["ok"]
    assert ok.trigger.type == "httpTrigger"
    assert ok.trigger.config["route"] == "ok/{id:int}"
    assert [b.name for b in ok.outputs] == ["out", "$return"]
    assert ok.context_param == "context"
    assert not ok.is_async and by_name["consume"].is_async
    reasons = "\n".join(skipped)
    assert "bad_route: unknown route constraint 'nosuch'" in reasons
    assert "bad_timer: schedule:" in reasons
    assert "hub: unsupported trigger ['eventHubTrigger']" in reasons


def test_functions_are_disabled_by_the_runtime_app_setting() -> None:
    specs, _ = build_catalog(_app())
    names = {s.name for s in specs}
    running, disabled = split_disabled(
        specs, {"AzureWebJobs.consume.Disabled": "True", "AzureWebJobs.ok.Disabled": "false"}
    )
    assert disabled == ["consume"]
    assert {s.name for s in running} == names - {"consume"}
    assert split_disabled(specs, {"AzureWebJobs.ok.Disabled": "1"})[1] == ["ok"]
