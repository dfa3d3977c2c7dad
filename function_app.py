"""The Function App: registers each stage's Blueprint, nothing else.

The Azure Functions runtime and the local host (``intake dev``) both load ``app``.
"""

import azure.functions as func

from functions import (
    audit,
    consent,
    console,
    drops,
    export,
    fhir,
    health,
    ingest,
    intake_requests,
    normalize,
    notify,
    store,
    subscriptions,
    sweeper,
    uploads,
)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (
    health.bp,
    ingest.bp,
    intake_requests.bp,
    uploads.bp,
    drops.bp,
    normalize.bp,
    consent.bp,
    store.bp,
    notify.bp,
    subscriptions.bp,
    fhir.bp,
    export.bp,
    sweeper.bp,
    audit.bp,
    console.bp,
):
    app.register_functions(blueprint)
