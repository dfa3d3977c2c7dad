"""The MLLP listener's Container App: deployed only with an image, TCP ingress on every
listener's port, always one replica, storage by the app identity, and the listener
configuration the container reads is the one main.bicep was given."""

from __future__ import annotations

from tests.support.bicep import INFRA, main_doc, module_doc, module_params, one, parsed

DOCKERFILE = INFRA / "mllp" / "Dockerfile"


def _app() -> dict[str, object]:
    return one(module_doc("mllp"), "Microsoft.App/containerApps")


def test_it_is_deployed_only_when_an_image_is_given() -> None:
    call = main_doc()["modules"]["mllp"]["config"]
    condition = call["condition"]["operator"]
    assert condition["type"] == "not"
    assert condition["operands"]["bool_value"]["function"]["parameters"] == {
        "item_to_test": "mllpImage"
    }
    params = module_params(main_doc(), "mllp")
    assert params["listeners"] == "mllpListeners" and params["image"] == "mllpImage"


def test_tcp_ingress_exposes_each_listeners_port_and_one_replica_always_runs() -> None:
    app = _app()
    ingress = app["properties"]["configuration"]["ingress"]  # type: ignore[index]
    assert ingress["transport"] == "tcp" and ingress["external"] is True
    first = {
        "operator": {"type": "index_accessor", "operands": {"operand_1": "ports", "operand_2": 0}}
    }
    assert ingress["targetPort"] == ingress["exposedPort"] == first
    more = ingress["additionalPortMappings"]
    assert more["loop_type"]["detail"]["array_name"]["function"]["type"] == "skip"
    assert more["config"] == {"external": True, "targetPort": "port", "exposedPort": "port"}
    assert app["properties"]["template"]["scale"] == {"minReplicas": 1, "maxReplicas": 1}  # type: ignore[index]
    ports = parsed(INFRA / "modules" / "mllp.bicep")["variables"]["ports"]["value"]
    assert ports["loop_type"]["detail"]["array_name"] == "listeners"


def test_the_container_reads_its_listeners_and_reaches_storage_by_identity() -> None:
    container = _app()["properties"]["template"]["containers"][0]  # type: ignore[index]
    assert container["args"] == ["--config", "/config/listeners.json"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["AzureWebJobsStorage__credential"] == "managedidentity"
    assert env["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert env["INTAKE_ENVIRONMENT"] == "production"
    assert not [name for name in env if name == "AzureWebJobsStorage"]  # no connection string
    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["intake", "mllp"]' in text and "USER intake" in text
    assert "COPY mllp_listener" in text
