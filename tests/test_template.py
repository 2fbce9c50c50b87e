"""Structural promises of template.yaml that `sam validate --lint` cannot check.

cfn-lint checks the template against the CloudFormation schema; these tests check it against the repo
(code folders, layer contents, state machine placeholders) and against the design (least privilege,
bucket hardening, the schedule building the window ending yesterday).
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
ASL = ROOT / "statemachine" / "pipeline.asl.json"

PIPELINE_FUNCTIONS = (
    "PlanFunction",
    "IngestFunction",
    "ValidateFunction",
    "ComputeFunction",
    "QualityGateFunction",
    "PublishFunction",
    "ReleaseFunction",
)
ALL_FUNCTIONS = (*PIPELINE_FUNCTIONS, "RollbackFunction", "RecommendFunction")
# Served without the JWT authorizer: health, version and the API docs (everything else needs a token).
PUBLIC_ROUTES = ("/healthz", "/readyz", "/version", "/docs", "/openapi.json")

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that keeps CloudFormation short-form tags (!Ref, !Sub, !GetAtt...) as {"!Tag": value}."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {f"!{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def _props(resources: dict[str, Any], name: str) -> dict[str, Any]:
    return resources[name].get("Properties", {})


def _policy_names(resources: dict[str, Any], fn: str) -> list[tuple[str, Any]]:
    """(policy template name, BucketName/FunctionName value) pairs of a SAM function's Policies."""
    out = []
    for policy in _props(resources, fn).get("Policies", []):
        if isinstance(policy, dict):
            for name, args in policy.items():
                if name == "!Ref":  # a managed policy of the template
                    out.append(("ManagedPolicy", {"!Ref": args}))
                    continue
                target = args.get("BucketName", args.get("FunctionName")) if isinstance(args, dict) else None
                out.append((name, target))
    return out


def _ref(name: str) -> dict[str, str]:
    return {"!Ref": name}


# --- functions ---------------------------------------------------------------------------------------------


def test_all_expected_functions_are_declared(resources: dict[str, Any]) -> None:
    declared = {k for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    assert declared == set(ALL_FUNCTIONS)


@pytest.mark.parametrize("fn", ALL_FUNCTIONS)
def test_function_code_folder_has_app_handler(resources: dict[str, Any], fn: str) -> None:
    props = _props(resources, fn)
    code_uri = props["CodeUri"]
    assert code_uri.startswith("functions/"), code_uri
    folder = ROOT / code_uri
    app = folder / "app.py"
    assert app.is_file(), f"{fn}: {app.relative_to(ROOT)} is missing"
    assert props.get("Handler", "app.handler") == "app.handler"
    module = ast.parse(app.read_text())
    top_level = {n.name for n in module.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    top_level |= {t.id for n in module.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert "handler" in top_level, f"{fn}: {app.relative_to(ROOT)} defines no top-level `handler`"


def test_globals_runtime_arch_layer_and_no_tracing(template: dict[str, Any], resources: dict[str, Any]) -> None:
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.12"
    assert glob["Architectures"] == ["arm64"]
    assert glob["Layers"] == [_ref("RecsysLayer")]
    # The X-Ray SDK is not bundled: active tracing would only add cost and noise.
    assert "Tracing" not in glob
    for fn in ALL_FUNCTIONS:
        props = _props(resources, fn)
        assert props.get("Runtime", glob["Runtime"]) == "python3.12", fn
        assert props.get("Architectures", glob["Architectures"]) == ["arm64"], fn
        assert "Tracing" not in props, fn
        assert props.get("Timeout", glob.get("Timeout", 3)) <= 900, fn


def test_globals_environment(template: dict[str, Any]) -> None:
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["RECSYS_STORE"] == {"!Sub": "s3://${ArtifactBucket}"}
    assert env["RECSYS_RAW_URI"] == _ref("RawEventsUri")
    assert env["RECSYS_CATALOG_URI"] == _ref("CatalogUri")
    assert env["POWERTOOLS_LOG_LEVEL"] == _ref("LogLevel")
    assert env["POWERTOOLS_SERVICE_NAME"] and env["POWERTOOLS_METRICS_NAMESPACE"]


@pytest.mark.parametrize("fn", ALL_FUNCTIONS)
def test_every_function_has_a_30_day_log_group(resources: dict[str, Any], fn: str) -> None:
    wanted = {"!Sub": f"/aws/lambda/${{{fn}}}"}
    groups = [
        v["Properties"]
        for v in resources.values()
        if v["Type"] == "AWS::Logs::LogGroup" and v["Properties"].get("LogGroupName") == wanted
    ]
    assert len(groups) == 1, f"{fn}: expected one log group named /aws/lambda/${{{fn}}}"
    assert groups[0]["RetentionInDays"] == 30


def test_least_privilege_s3_policies(resources: dict[str, Any]) -> None:
    artifact, raw, lease = "ArtifactBucket", "RawEventsBucket", "RunLeasePolicy"
    expected = {
        "PlanFunction": {("S3ReadPolicy", artifact), ("ManagedPolicy", lease)},
        "IngestFunction": {("S3ReadPolicy", raw), ("S3CrudPolicy", artifact)},
        "ValidateFunction": {("S3ReadPolicy", artifact), ("ManagedPolicy", lease)},
        "ComputeFunction": {("S3ReadPolicy", raw), ("S3CrudPolicy", artifact)},
        "QualityGateFunction": {("S3ReadPolicy", raw), ("S3CrudPolicy", artifact)},
        "PublishFunction": {("S3CrudPolicy", artifact)},
        "RollbackFunction": {("S3CrudPolicy", artifact)},
        "ReleaseFunction": {("ManagedPolicy", lease)},
    }
    for fn, want in expected.items():
        got = {(name, target["!Ref"]) for name, target in _policy_names(resources, fn)}
        assert got == want, fn


# --- layer -------------------------------------------------------------------------------------------------


def _requirement_names(path: Path) -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {re.split(r"[\s\[<>=!~;]", line, maxsplit=1)[0].lower() for line in lines if line}


def test_layer_content_and_build(resources: dict[str, Any]) -> None:
    layer = resources["RecsysLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    props = layer["Properties"]
    content = ROOT / props["ContentUri"]
    assert (content / "requirements.txt").is_file()
    assert (content / "recsys" / "__init__.py").is_file()
    assert props["CompatibleRuntimes"] == ["python3.12"]
    assert props["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "python3.12", "BuildArchitecture": "arm64"}


def test_api_layer_content_and_build(resources: dict[str, Any]) -> None:
    layer = resources["ApiLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    props = layer["Properties"]
    assert props["ContentUri"] == "layers/api/"
    requirements = ROOT / props["ContentUri"] / "requirements.txt"
    assert requirements.is_file()
    assert {"fastapi", "mangum"} <= _requirement_names(requirements)
    # boto3 comes with the runtime; bundling it would only add ~25 MB.
    assert not {"boto3", "botocore"} & _requirement_names(requirements)
    assert props["CompatibleRuntimes"] == ["python3.12"]
    assert props["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "python3.12", "BuildArchitecture": "arm64"}


def _effective_layers(template: dict[str, Any], fn: str) -> list[Any]:
    # SAM appends a function's own list properties to the Globals ones.
    return [*template["Globals"]["Function"].get("Layers", []), *_props(template["Resources"], fn).get("Layers", [])]


def test_only_the_recommend_function_gets_the_api_layer(template: dict[str, Any]) -> None:
    assert _effective_layers(template, "RecommendFunction") == [_ref("RecsysLayer"), _ref("ApiLayer")]
    for fn in ALL_FUNCTIONS:
        if fn != "RecommendFunction":
            assert _effective_layers(template, fn) == [_ref("RecsysLayer")], fn


# --- recommend API -----------------------------------------------------------------------------------------


def test_recommend_function(resources: dict[str, Any]) -> None:
    props = _props(resources, "RecommendFunction")
    assert props["CodeUri"] == "functions/recommend/"
    assert props["Handler"] == "app.handler"
    assert props["MemorySize"] == 1024
    assert props["Timeout"] == 10
    env = props["Environment"]["Variables"]
    assert env["RECSYS_STORE"] == {"!Sub": "s3://${ArtifactBucket}"}
    assert env["RECSYS_ARTIFACT_MANIFEST_TEMPLATE"] == {
        "!Sub": "s3://${ArtifactBucket}/registry/current/{tenant}/{surface}/manifest.json"
    }
    assert env["RECSYS_ARTIFACT_MANIFEST_TTL"] == "60"
    assert env["POWERTOOLS_SERVICE_NAME"] == "recsys-api"
    assert env["AUTH_TENANT_CLAIMS"] == _ref("AuthTenantClaims")
    assert env["AUTH_ROLE_CLAIMS"] == _ref("AuthRoleClaims")
    assert env["API_KEY_ENABLED"] == _ref("ApiKeyEnabled")
    # Behind a real authorizer the dev headers must never be trusted.
    assert env["DEV_AUTH_ENABLED"] == "false"


def test_recommend_function_s3_access(resources: dict[str, Any]) -> None:
    policies = _props(resources, "RecommendFunction")["Policies"]
    templates = {name: args for p in policies for name, args in p.items() if name != "Statement"}
    assert templates == {"S3ReadPolicy": {"BucketName": _ref("ArtifactBucket")}}  # no bucket-wide write
    statements = [s for p in policies for s in p.get("Statement", [])]
    writes = [s for s in statements if any(a != "s3:GetObject" for a in s["Action"])]
    assert len(writes) == 1
    (write,) = writes
    assert write["Effect"] == "Allow"
    assert set(write["Action"]) == {"s3:GetObject", "s3:PutObject"}
    assert write["Resource"] == [
        {"!Sub": "${ArtifactBucket.Arn}/tenants/*"},
        {"!Sub": "${ArtifactBucket.Arn}/api-keys/*"},
    ]


def test_http_api_jwt_authorizer(template: dict[str, Any], resources: dict[str, Any]) -> None:
    api = resources["HttpApi"]
    assert api["Type"] == "AWS::Serverless::HttpApi"
    auth = api["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == "JwtAuthorizer"
    jwt = auth["Authorizers"]["JwtAuthorizer"]
    assert jwt["IdentitySource"] == "$request.header.Authorization"
    assert jwt["JwtConfiguration"] == {"issuer": _ref("JwtIssuer"), "audience": _ref("JwtAudience")}
    params = template["Parameters"]
    assert "Default" not in params["JwtIssuer"] and "Default" not in params["JwtAudience"]
    assert params["JwtAudience"]["Type"] == "CommaDelimitedList"
    assert params["AuthTenantClaims"]["Default"] == "tenant_id,org_id,orgId,organization_id"
    # Roles only from claims the operator names: no default reads OAuth scopes ("openid admin") as roles.
    assert params["AuthRoleClaims"]["Default"] == ""
    assert params["ApiKeyEnabled"]["Default"] == "false"


def test_api_routes(resources: dict[str, Any]) -> None:
    events = _props(resources, "RecommendFunction")["Events"]
    routes = {}
    for event in events.values():
        assert event["Type"] == "HttpApi"
        props = event["Properties"]
        assert props["ApiId"] == _ref("HttpApi")
        routes[(props["Method"].upper(), props["Path"])] = props.get("Auth", {}).get("Authorizer")
    # The catch-all keeps the default (JWT) authorizer; only the public GET routes opt out.
    assert routes.pop(("ANY", "/{proxy+}")) is None
    assert routes == {("GET", path): "NONE" for path in PUBLIC_ROUTES}


def test_api_throttling_and_access_logs(template: dict[str, Any], resources: dict[str, Any]) -> None:
    props = resources["HttpApi"]["Properties"]
    assert props["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": _ref("ApiThrottlingBurstLimit"),
        "ThrottlingRateLimit": _ref("ApiThrottlingRateLimit"),
    }
    params = template["Parameters"]
    assert params["ApiThrottlingBurstLimit"]["Type"] == params["ApiThrottlingRateLimit"]["Type"] == "Number"
    logs = props["AccessLogSettings"]
    group = logs["DestinationArn"]["!GetAtt"].split(".")[0]
    assert resources[group]["Type"] == "AWS::Logs::LogGroup"
    assert resources[group]["Properties"]["RetentionInDays"] == 30
    fields = json.loads(logs["Format"])  # one JSON object per request
    assert {"requestId", "status", "routeKey", "integrationError", "authorizerError"} <= set(fields)
    assert fields["requestId"] == "$context.requestId"


# --- state machine -----------------------------------------------------------------------------------------


def test_state_machine_substitutions_match_asl_placeholders(resources: dict[str, Any]) -> None:
    props = _props(resources, "PipelineStateMachine")
    assert props["Type"] == "STANDARD"
    asl_path = ROOT / props["DefinitionUri"]
    assert asl_path == ASL
    assert asl_path.is_file(), f"{asl_path.relative_to(ROOT)} is missing"
    text = asl_path.read_text()
    json.loads(text)  # must be plain JSON
    used = set(PLACEHOLDER.findall(text))
    subs = props["DefinitionSubstitutions"]
    assert used == set(subs), f"ASL uses {sorted(used)}, template substitutes {sorted(subs)}"
    assert set(subs) == {f"{fn}Arn" for fn in PIPELINE_FUNCTIONS}
    for key, value in subs.items():
        assert value == {"!GetAtt": f"{key.removesuffix('Arn')}.Arn"}, key


def test_state_machine_may_invoke_exactly_the_pipeline_functions(resources: dict[str, Any]) -> None:
    invoked = {
        target["!Ref"]
        for name, target in _policy_names(resources, "PipelineStateMachine")
        if name == "LambdaInvokePolicy"
    }
    assert invoked == set(PIPELINE_FUNCTIONS)


def test_state_machine_logging(resources: dict[str, Any]) -> None:
    logging = _props(resources, "PipelineStateMachine")["Logging"]
    assert logging["Level"] == "ERROR"
    assert logging["IncludeExecutionData"] is False
    (dest,) = logging["Destinations"]
    group = dest["CloudWatchLogsLogGroup"]["LogGroupArn"]["!GetAtt"].split(".")[0]
    assert resources[group]["Type"] == "AWS::Logs::LogGroup"
    statements = [
        s
        for p in _props(resources, "PipelineStateMachine")["Policies"]
        if isinstance(p, dict) and "Statement" in p
        for s in p["Statement"]
    ]
    actions = {a for s in statements for a in s["Action"]}
    assert {"logs:CreateLogDelivery", "logs:PutResourcePolicy", "logs:DescribeLogGroups"} <= actions


def test_schedule_runs_yesterday_for_one_tenant_surface(template: dict[str, Any], resources: dict[str, Any]) -> None:
    events = _props(resources, "PipelineStateMachine")["Events"]
    schedule = events["DailySchedule"]
    assert schedule["Type"] in ("ScheduleV2", "Schedule")
    props = schedule["Properties"]
    expr_key = "ScheduleExpression" if schedule["Type"] == "ScheduleV2" else "Schedule"
    assert props[expr_key] == _ref("ScheduleExpression")
    assert props["State"] == _ref("ScheduleState")
    params = template["Parameters"]
    rendered = PLACEHOLDER.sub(lambda m: params[m.group(1)]["Default"], props["Input"]["!Sub"])
    payload = json.loads(rendered)
    assert payload == {"tenant": "demo", "surface": "home"}
    # No window: the plan step defaults to the trailing window ending yesterday (UTC).
    assert "start" not in payload and "end" not in payload


def test_schedule_descriptions_name_the_window_plan_builds(template: dict[str, Any], resources: dict[str, Any]) -> None:
    from recsys.settings import Settings

    window = f"{Settings.model_fields['window_days'].default} days ending yesterday"
    schedule = _props(resources, "PipelineStateMachine")["Events"]["DailySchedule"]["Properties"]
    assert window in schedule["Description"]
    assert window in template["Parameters"]["ScheduleExpression"]["Description"]


def test_parameters_and_defaults(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert {"RawEventsUri", "RawEventsBucket"} <= set(params)
    assert "Default" not in params["RawEventsUri"] and "Default" not in params["RawEventsBucket"]
    assert params["CatalogUri"]["Default"] == ""
    assert params["ScheduleExpression"]["Default"] == "cron(30 1 * * ? *)"
    assert params["ScheduleState"]["Default"] == "ENABLED"
    assert set(params["ScheduleState"]["AllowedValues"]) == {"ENABLED", "DISABLED"}
    assert params["LogLevel"]["Default"] == "INFO"


# --- artifact bucket ---------------------------------------------------------------------------------------


def test_artifact_bucket_is_private_encrypted_versioned_and_retained(resources: dict[str, Any]) -> None:
    bucket = resources["ArtifactBucket"]
    assert bucket["Type"] == "AWS::S3::Bucket"
    assert bucket["DeletionPolicy"] == "Retain"
    assert bucket["UpdateReplacePolicy"] == "Retain"
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (sse,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    rules = props["LifecycleConfiguration"]["Rules"]
    assert any(r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") == 30 for r in rules)


def test_artifact_bucket_denies_insecure_transport(resources: dict[str, Any]) -> None:
    policies = [v["Properties"] for v in resources.values() if v["Type"] == "AWS::S3::BucketPolicy"]
    assert [p["Bucket"] for p in policies] == [_ref("ArtifactBucket")]
    statements = policies[0]["PolicyDocument"]["Statement"]
    deny = [s for s in statements if s["Effect"] == "Deny"]
    assert any(s["Condition"]["Bool"]["aws:SecureTransport"] in ("false", False) for s in deny)


# --- outputs and SAM CLI config ----------------------------------------------------------------------------


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert {
        "ArtifactBucketName",
        "PipelineStateMachineArn",
        "RollbackFunctionName",
        "ConsoleBackfillHint",
        "ApiUrl",
    } <= set(outputs)
    assert outputs["ApiUrl"]["Value"] == {"!Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"}
    hint = json.loads(outputs["ConsoleBackfillHint"]["Value"])
    assert hint == {"tenant": "demo", "surface": "home", "start": "2026-01-01", "end": "2026-01-07", "promote": False}


def test_samconfig() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["default"]["global"]["parameters"]["stack_name"] == "recsys-serverless"
    deploy = config["default"]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["confirm_changeset"] is True
    # Stack parameters are per deployment; none may be committed.
    assert "parameter_overrides" not in deploy


def test_run_lease_policy_reaches_only_the_leases(resources: dict[str, Any]) -> None:
    statements = resources["RunLeasePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Action"] for s in statements] == [["s3:GetObject", "s3:PutObject"]]
    assert all(s["Resource"]["!Sub"].endswith("${ArtifactBucket}/registry/leases/*") for s in statements)
