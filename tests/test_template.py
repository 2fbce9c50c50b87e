"""Structural promises of template.yaml that `sam validate --lint` cannot check.

cfn-lint checks the template against the CloudFormation schema; these tests check it against the repo
(code folders, layer contents, state machine placeholders) and against the design (least privilege per function,
bucket hardening, the daily run of every target, tracing, and each alarm's metric, threshold and action).
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
DAILY_ASL = ROOT / "statemachine" / "daily.asl.json"

PIPELINE_FUNCTIONS = (
    "PlanFunction",
    "IngestFunction",
    "ValidateFunction",
    "PartialsFunction",
    "ComputeFunction",
    "QualityGateFunction",
    "PublishFunction",
    "ReleaseFunction",
)
OPERATOR_FUNCTIONS = ("RollbackFunction", "FreshnessFunction", "GcFunction")
ALL_FUNCTIONS = (*PIPELINE_FUNCTIONS, *OPERATOR_FUNCTIONS, "RecommendFunction")
# Served without the JWT authorizer: health, version and the API docs (everything else needs a token).
PUBLIC_ROUTES = ("/healthz", "/readyz", "/livez", "/health", "/version", "/docs", "/openapi.json")

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


def test_globals_runtime_arch_layer_and_tracing(template: dict[str, Any], resources: dict[str, Any]) -> None:
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.12"
    # One parameter for every function and layer: arm64 on AWS, x86_64 for local containers (#19).
    assert glob["Architectures"] == [_ref("Architecture")]
    architecture = template["Parameters"]["Architecture"]
    assert (architecture["Default"], architecture["AllowedValues"]) == ("arm64", ["arm64", "x86_64"])
    for layer in ("RecsysLayer", "ApiLayer"):
        assert _props(resources, layer)["CompatibleArchitectures"] == [_ref("Architecture")], layer
    assert resources["ApiLayer"]["Metadata"]["BuildArchitecture"] == _ref("Architecture")
    makefile = (ROOT / "layers" / "recsys" / "Makefile").read_text()
    assert "LAYER_ARCH ?= arm64" in makefile  # the makefile build's default follows the parameter's
    assert glob["Layers"] == [_ref("RecsysLayer")]
    assert glob["Tracing"] == "Active"  # Powertools Tracer (aws-xray-sdk is in the layer) adds subsegments
    assert "aws-xray-sdk" in _requirement_names(ROOT / "layers" / "recsys" / "requirements.txt")
    for fn in ALL_FUNCTIONS:
        props = _props(resources, fn)
        assert props.get("Runtime", glob["Runtime"]) == "python3.12", fn
        assert props.get("Architectures", glob["Architectures"]) == [_ref("Architecture")], fn
        assert props.get("Tracing", "Active") == ("Active" if fn != "RecommendFunction" else _ref("ApiTracing")), fn
        assert props.get("Timeout", glob.get("Timeout", 3)) <= 900, fn
    assert template["Parameters"]["ApiTracing"]["Default"] == "Active"
    for machine in ("PipelineStateMachine", "DailyRunStateMachine"):
        assert _props(resources, machine)["Tracing"] == {"Enabled": True}, machine
        actions = {a for st in _statements(resources, machine) for a in _list(st["Action"])}
        assert {"xray:PutTraceSegments", "xray:GetSamplingRules"} <= actions, machine


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


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _branches(value: Any) -> list[Any]:
    """What a template value can be: each branch of an !If (recursively), AWS::NoValue left out."""
    if isinstance(value, dict) and "!If" in value:
        return [v for branch in value["!If"][1:] for v in _branches(branch)]
    return [] if value == _ref("AWS::NoValue") else [value]


def _statements(resources: dict[str, Any], owner: str) -> list[dict[str, Any]]:
    """Every IAM statement a function or state machine can get: inline ones and those of the managed policies it
    lists, under any condition (both branches of each !If: what it grants when its condition holds, and otherwise)."""
    out = []
    for entry in _props(resources, owner).get("Policies", []):
        for policy in _branches(entry):
            if "Statement" in policy:
                statements = policy["Statement"]
            elif "!Ref" in policy:  # a managed policy of this template
                statements = resources[policy["!Ref"]]["Properties"]["PolicyDocument"]["Statement"]
            elif "LambdaInvokePolicy" in policy:
                continue
            else:
                raise AssertionError(f"{owner}: {policy} is a SAM policy template; write its statements out")
            out += [s for statement in statements for s in _branches(statement)]
    return out


_BUCKETS = {
    "${ArtifactBucket.Arn}": "artifacts-bucket",
    "arn:${AWS::Partition}:s3:::${ArtifactBucket}": "artifacts-bucket",
    "arn:${AWS::Partition}:s3:::${RawEventsBucket}": "raw-bucket",
}


def _s3_resource(resource: Any) -> str:
    """A statement's S3 resource as 'artifacts-bucket:canonical/*' (objects) or 'artifacts-bucket' (the bucket)."""
    if resource == {"!GetAtt": "ArtifactBucket.Arn"}:
        return "artifacts-bucket"
    text = resource["!Sub"]
    for arn, name in _BUCKETS.items():
        if text == arn:
            return name
        if text.startswith(arn + "/"):
            return f"{name}:{text[len(arn) + 1 :]}"
    raise AssertionError(f"unexpected S3 resource {resource}")


def s3_grants(resources: dict[str, Any], owner: str) -> set[tuple[str, str]]:
    grants = set()
    for statement in _statements(resources, owner):
        assert "NotAction" not in statement and "NotResource" not in statement
        if statement["Effect"] == "Deny":  # only NoNetworkInterfacesPolicy denies, and never S3
            assert not any(a.startswith("s3:") for a in _list(statement["Action"])), statement
            continue
        assert statement["Effect"] == "Allow"
        for action in _list(statement["Action"]):
            if action.startswith("s3:"):
                grants |= {(action, _s3_resource(r)) for r in _list(statement["Resource"])}
    return grants


LIST = ("s3:ListBucket", "artifacts-bucket")
RAW = {("s3:GetObject", "raw-bucket:*"), ("s3:ListBucket", "raw-bucket")}
LEASE = {("s3:GetObject", "artifacts-bucket:registry/leases/*"), ("s3:PutObject", "artifacts-bucket:registry/leases/*")}
BUILD = {
    ("s3:GetObject", "artifacts-bucket:canonical/*"),
    *((action, f"artifacts-bucket:{prefix}/*") for action in ("s3:GetObject", "s3:PutObject")
      for prefix in ("partials", "artifacts")),
}  # fmt: skip
# Every S3 action on every prefix, per function: what the code reads and writes, nothing else.
S3_GRANTS: dict[str, set[tuple[str, str]]] = {
    "PlanFunction": {LIST, ("s3:GetObject", "artifacts-bucket:canonical/*"), *LEASE},
    "IngestFunction": {
        *RAW, LIST, *LEASE,
        *((a, "artifacts-bucket:canonical/*") for a in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")),
    },
    "ValidateFunction": {LIST, ("s3:GetObject", "artifacts-bucket:canonical/*"), *LEASE},
    "PartialsFunction": {LIST, *BUILD, *LEASE},
    "ComputeFunction": {*RAW, LIST, *BUILD, *LEASE},
    "QualityGateFunction": {
        *RAW, LIST, *BUILD, *LEASE,
        *(("s3:GetObject", f"artifacts-bucket:{p}/*") for p in ("registry/current", "registry/manifests", "tenants")),
    },
    "PublishFunction": {
        LIST, *LEASE, ("s3:GetObject", "artifacts-bucket:artifacts/*"),
        *((a, f"artifacts-bucket:{p}/*") for a in ("s3:GetObject", "s3:PutObject")
          for p in ("registry/current", "registry/manifests")),
    },
    "ReleaseFunction": LEASE,
    "RollbackFunction": {
        LIST, ("s3:PutObject", "artifacts-bucket:registry/current/*"),
        *(("s3:GetObject", f"artifacts-bucket:{p}/*") for p in ("registry/current", "registry/manifests", "artifacts")),
    },
    "FreshnessFunction": {LIST, ("s3:GetObject", "artifacts-bucket:registry/current/*")},
    "GcFunction": {
        LIST, *LEASE,
        *(("s3:GetObject", f"artifacts-bucket:{p}/*") for p in ("registry/current", "registry/manifests", "partials")),
        *(("s3:DeleteObject", f"artifacts-bucket:{p}/*") for p in ("artifacts", "partials", "canonical")),
    },
    "RecommendFunction": {
        LIST,
        *(("s3:GetObject", f"artifacts-bucket:{p}/*") for p in ("registry/current", "registry/manifests", "artifacts")),
        *((a, f"artifacts-bucket:{p}/*") for a in ("s3:GetObject", "s3:PutObject")
          for p in ("tenants", "api-keys", "audit")),
    },
}  # fmt: skip


@pytest.mark.parametrize("fn", ALL_FUNCTIONS)
def test_each_function_gets_exactly_the_s3_actions_and_prefixes_it_uses(resources: dict[str, Any], fn: str) -> None:
    assert s3_grants(resources, fn) == S3_GRANTS[fn]


def test_no_function_may_change_the_bucket_or_delete_what_it_does_not_own(resources: dict[str, Any]) -> None:
    for fn in ALL_FUNCTIONS:
        actions = {action for action, _ in s3_grants(resources, fn)}
        assert actions <= {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}, fn  # no config, ACLs
        deletes = {resource for action, resource in s3_grants(resources, fn) if action == "s3:DeleteObject"}
        # Only ingest (a stale quarantine file of its own day) and the garbage collector delete.
        owned = {
            "IngestFunction": {"artifacts-bucket:canonical/*"},
            "GcFunction": {f"artifacts-bucket:{p}/*" for p in ("artifacts", "partials", "canonical")},
        }
        assert deletes == owned.get(fn, set()), fn
        # Nobody but publish and rollback moves a pointer.
        movers = {r for a, r in s3_grants(resources, fn) if a == "s3:PutObject" and r.endswith("registry/current/*")}
        assert not movers or fn in ("PublishFunction", "RollbackFunction"), fn


def test_the_api_reads_no_raw_canonical_or_pipeline_data(resources: dict[str, Any]) -> None:
    resources_read = {r for _, r in s3_grants(resources, "RecommendFunction")}
    assert not any(r.startswith("raw-bucket") for r in resources_read)
    for prefix in ("canonical/", "partials/", "registry/leases/", "quarantine"):
        assert not any(prefix in r for r in resources_read), prefix


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
    assert props["CompatibleArchitectures"] == [_ref("Architecture")]
    # The layer's Makefile installs the lock (the whole closure, --no-deps) for python3.12 (LAYER_ARCH), then strips.
    assert layer["Metadata"] == {"BuildMethod": "makefile"}
    makefile = (content / "Makefile").read_text()
    assert "build-RecsysLayer:" in makefile and "--no-deps" in makefile and "requirements.lock" in makefile
    assert "--python-version 3.12" in makefile and "aarch64" in makefile


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
    assert props["CompatibleArchitectures"] == [_ref("Architecture")]
    assert layer["Metadata"] == {"BuildMethod": "python3.12", "BuildArchitecture": _ref("Architecture")}


def _effective_layers(template: dict[str, Any], fn: str) -> list[Any]:
    # SAM appends a function's own list properties to the Globals ones.
    return [*template["Globals"]["Function"].get("Layers", []), *_props(template["Resources"], fn).get("Layers", [])]


def test_only_the_recommend_function_gets_the_api_layer(template: dict[str, Any]) -> None:
    assert _effective_layers(template, "RecommendFunction") == [_ref("RecsysLayer"), _ref("ApiLayer")]
    for fn in ALL_FUNCTIONS:
        if fn != "RecommendFunction":
            assert _effective_layers(template, fn) == [_ref("RecsysLayer")], fn


# --- recommend API -----------------------------------------------------------------------------------------


def test_recommend_function(template: dict[str, Any], resources: dict[str, Any]) -> None:
    props = _props(resources, "RecommendFunction")
    assert props["CodeUri"] == "functions/recommend/"
    assert props["Handler"] == "app.handler"
    assert props["MemorySize"] == _ref("ApiMemorySize")
    assert template["Parameters"]["ApiMemorySize"]["Default"] == 1024
    assert props["ReservedConcurrentExecutions"] == {
        "!If": ["HasApiReservedConcurrency", _ref("ApiReservedConcurrency"), _ref("AWS::NoValue")]
    }
    assert template["Parameters"]["ApiReservedConcurrency"]["Default"] == -1
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
    # Limits: the tenant default from parameters (per instance), the seed's per-IP bucket on unauthenticated paths.
    assert env["TENANT_RATE_LIMIT_ENABLED"] == _ref("ApiTenantRateLimitEnabled")
    assert env["TENANT_RATE_LIMIT_CAPACITY"] == _ref("ApiTenantRateLimitBurst")
    assert env["TENANT_RATE_LIMIT_REFILL_RATE"] == _ref("ApiTenantRateLimitRate")
    assert (env["RECSYS_CLIENT_RATE_LIMIT_CAPACITY"], env["RECSYS_CLIENT_RATE_LIMIT_REFILL_RATE"]) == ("30", "15")
    assert template["Parameters"]["ApiTenantRateLimitEnabled"]["Default"] == "false"


def test_cors_is_a_parameter_answered_before_the_authorizer(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    cors = resources["HttpApi"]["Properties"]["CorsConfiguration"]["!If"]
    assert cors[0] == "HasCors" and cors[2] == _ref("AWS::NoValue")
    assert cors[1]["AllowOrigins"] == _ref("ApiCorsAllowOrigins")
    assert {"Authorization", "If-Match", "X-API-Key"} <= set(cors[1]["AllowHeaders"])
    assert {"ETag", "Retry-After"} <= set(cors[1]["ExposeHeaders"])
    assert template["Parameters"]["ApiCorsAllowOrigins"]["Default"] == ""


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


def test_daily_run_starts_one_pipeline_per_target(template: dict[str, Any], resources: dict[str, Any]) -> None:
    props = _props(resources, "DailyRunStateMachine")
    assert props["Type"] == "STANDARD"
    assert ROOT / props["DefinitionUri"] == DAILY_ASL
    text = DAILY_ASL.read_text()
    assert (
        set(PLACEHOLDER.findall(text))
        == set(props["DefinitionSubstitutions"])
        == {
            "PipelineStateMachineArn",
            "MaxConcurrency",
        }
    )
    assert props["DefinitionSubstitutions"] == {
        "PipelineStateMachineArn": _ref("PipelineStateMachine"),
        "MaxConcurrency": _ref("DailyRunMaxConcurrency"),
    }
    definition = json.loads(text.replace("${MaxConcurrency}", "4"))
    each = definition["States"]["RunEachTarget"]
    assert each["Type"] == "Map" and each["MaxConcurrency"] == 4
    (task,) = [s for s in each["ItemProcessor"]["States"].values() if s["Type"] == "Task"]
    assert task["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    grants = {(a, json.dumps(st["Resource"])) for st in _statements(resources, "DailyRunStateMachine")
              for a in _list(st["Action"]) if a.startswith("states:")}  # fmt: skip
    assert {a for a, _ in grants} == {"states:StartExecution", "states:DescribeExecution", "states:StopExecution"}
    assert ("states:StartExecution", json.dumps(_ref("PipelineStateMachine"))) in grants


def test_schedule_runs_every_target_over_the_window_ending_yesterday(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert "Events" not in _props(resources, "PipelineStateMachine")  # backfills are started by hand
    schedule = _props(resources, "DailyRunStateMachine")["Events"]["DailySchedule"]
    assert schedule["Type"] == "ScheduleV2"
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == _ref("ScheduleExpression")
    assert props["State"] == _ref("ScheduleState")
    assert props["DeadLetterConfig"] == {"Arn": {"!GetAtt": "ScheduleDeadLetterQueue.Arn"}}
    params = template["Parameters"]
    payload = json.loads(PLACEHOLDER.sub(lambda m: params[m.group(1)]["Default"], props["Input"]["!Sub"]))
    assert payload == {"targets": "demo/home"}  # no window: each pipeline plans the days ending yesterday (UTC)
    pattern = re.compile(params["ScheduleTargets"]["AllowedPattern"])
    assert pattern.match("demo/home,acme-eu/shop.v2") and not pattern.match("demo") and not pattern.match("a/b,")
    from recsys.paths import parse_targets

    assert [(t.tenant, t.surface) for t in parse_targets(params["ScheduleTargets"]["Default"])] == [("demo", "home")]
    assert template["Globals"]["Function"]["Environment"]["Variables"]["RECSYS_TARGETS"] == _ref("ScheduleTargets")


def test_schedule_descriptions_name_the_window_plan_builds(template: dict[str, Any], resources: dict[str, Any]) -> None:
    from recsys.settings import Settings

    window = f"{Settings.model_fields['window_days'].default} days ending yesterday"
    schedule = _props(resources, "DailyRunStateMachine")["Events"]["DailySchedule"]["Properties"]
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
    assert params["DailyRunMaxConcurrency"]["Default"] == 4
    assert params["FreshnessSloHours"]["Default"] == 36
    assert params["AlarmEmail"]["Default"] == ""
    for fn, parameter in {"IngestFunction": "IngestMemorySize", "PartialsFunction": "PartialsMemorySize",
                          "ComputeFunction": "ComputeMemorySize", "PublishFunction": "PublishMemorySize",
                          "QualityGateFunction": "QualityGateMemorySize"}.items():  # fmt: skip
        assert template["Resources"][fn]["Properties"]["MemorySize"] == _ref(parameter)
        assert params[parameter]["Type"] == "Number" and params[parameter]["MaxValue"] == 10240


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
        "DailyRunStateMachineArn",
        "AlarmTopicArn",
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


def test_samconfig_local_is_what_make_sam_local_passes(tmp_path: Path) -> None:
    """`--config-env local` (commands typed by hand) and `make sam-local` run the same build, image, parameters and
    environment on x86_64."""
    from recsys_tools.sam_local import image
    from recsys_tools.sam_local.sam import Sam
    from recsys_tools.sam_local.smoke import ENV_FILE

    local = tomllib.loads((ROOT / "samconfig.toml").read_text())["local"]
    sam = Sam(ROOT, tmp_path, "x86_64", image.ALIAS)
    build = local["build"]["parameters"]
    assert ROOT / build["build_dir"] == sam.build_dir and build["parameter_overrides"] == sam.parameter_overrides
    for command in ("local_invoke", "local_start_lambda", "local_start_api"):
        parameters = local[command]["parameters"]
        assert ROOT / parameters["template_file"] == sam.template
        assert parameters["parameter_overrides"] == sam.parameter_overrides
        assert (parameters["env_vars"], parameters["invoke_image"]) == (ENV_FILE, image.ALIAS)
        assert parameters["skip_pull_image"] is True
    assert (ROOT / ENV_FILE).is_file()


def test_run_lease_policy_reaches_only_the_leases(resources: dict[str, Any]) -> None:
    statements = resources["RunLeasePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Action"] for s in statements] == [["s3:GetObject", "s3:PutObject"]]
    assert all(s["Resource"]["!Sub"].endswith("${ArtifactBucket}/registry/leases/*") for s in statements)


# --- alarms ------------------------------------------------------------------------------------------------


def _alarm_metrics(alarm: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(namespace, metric, dimension value) of each metric an alarm reads, directly or in its metric math."""
    if "Metrics" not in alarm:
        return [(alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"][0]["Value"])]
    out = []
    for query in alarm["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            out.append((metric["Namespace"], metric["MetricName"], metric["Dimensions"][0]["Value"]))
    return out


# alarm -> (metrics it reads, threshold, comparison)
ALARMS = {
    "FreshnessAlarm": ([("Recsys", "MaxManifestAgeHours", "recsys-freshness")], _ref("FreshnessSloHours"),
                       "GreaterThanThreshold"),
    "MissingManifestAlarm": ([("Recsys", "MissingManifests", "recsys-freshness")], 0, "GreaterThanThreshold"),
    "PipelineFailuresAlarm": ([("AWS/States", m, _ref("PipelineStateMachine"))
                               for m in ("ExecutionsFailed", "ExecutionsTimedOut")], 0, "GreaterThanThreshold"),
    "DailyRunFailuresAlarm": ([("AWS/States", m, _ref("DailyRunStateMachine"))
                               for m in ("ExecutionsFailed", "ExecutionsTimedOut")], 0, "GreaterThanThreshold"),
    "ScheduleDeadLetterAlarm": ([("AWS/SQS", "ApproximateNumberOfMessagesVisible",
                                  {"!GetAtt": "ScheduleDeadLetterQueue.QueueName"})], 0, "GreaterThanThreshold"),
    "PipelineErrorsAlarm": ([("AWS/Lambda", "Errors", _ref(fn)) for fn in PIPELINE_FUNCTIONS], 0,
                            "GreaterThanThreshold"),
    "OperatorFunctionErrorsAlarm": ([("AWS/Lambda", "Errors", _ref(fn)) for fn in OPERATOR_FUNCTIONS], 0,
                                    "GreaterThanThreshold"),
    "PipelineThrottlesAlarm": ([("AWS/Lambda", "Throttles", _ref(fn)) for fn in PIPELINE_FUNCTIONS], 0,
                               "GreaterThanThreshold"),
    "ApiAndOperatorThrottlesAlarm": ([("AWS/Lambda", "Throttles", _ref(fn))
                                      for fn in ("RecommendFunction", *OPERATOR_FUNCTIONS)], 0, "GreaterThanThreshold"),
    "ApiFunctionErrorsAlarm": ([("AWS/Lambda", "Errors", _ref("RecommendFunction"))], 0, "GreaterThanThreshold"),
    "Api5xxAlarm": ([("AWS/ApiGateway", m, _ref("HttpApi")) for m in ("5xx", "Count")], 1, "GreaterThanThreshold"),
    "ApiLatencyAlarm": ([("AWS/ApiGateway", "Latency", _ref("HttpApi"))], _ref("ApiLatencyP99Ms"),
                        "GreaterThanThreshold"),
}  # fmt: skip


def test_every_alarm_reads_its_metric_with_its_threshold_and_notifies_the_topic(resources: dict[str, Any]) -> None:
    alarms = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(alarms) == set(ALARMS)
    for name, (metrics, threshold, comparison) in ALARMS.items():
        alarm = alarms[name]
        assert sorted(map(json.dumps, _alarm_metrics(alarm))) == sorted(map(json.dumps, metrics)), name
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (threshold, comparison), name
        assert alarm["AlarmActions"] == [_ref("AlarmTopic")], name
        runbooks = re.findall(r"docs/runbooks/[a-z-]+\.md", alarm["AlarmDescription"])
        assert runbooks and all((ROOT / r).is_file() for r in runbooks), name
        metric_count = sum("MetricStat" in q for q in alarm.get("Metrics", []))
        assert metric_count <= 10, name  # CloudWatch's hard limit for metric math alarms
    for lambda_metric in ("Errors", "Throttles"):  # every function's errors and throttles reach the topic
        covered = {json.dumps(dim) for a in alarms.values() for _, m, dim in _alarm_metrics(a) if m == lambda_metric}
        assert covered == {json.dumps(_ref(fn)) for fn in ALL_FUNCTIONS}, lambda_metric
    assert alarms["FreshnessAlarm"]["TreatMissingData"] == "breaching"  # a silent check is not a fresh manifest
    assert alarms["ApiLatencyAlarm"]["ExtendedStatistic"] == "p99"


def test_freshness_metrics_match_what_the_function_publishes(resources: dict[str, Any]) -> None:
    env = _props(resources, "FreshnessFunction")["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "recsys-freshness"  # the alarms' service dimension
    assert env["RECSYS_FRESHNESS_SLO_HOURS"] == _ref("FreshnessSloHours")
    schedule = _props(resources, "FreshnessFunction")["Events"]["FreshnessCheck"]
    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["ScheduleExpression"] == _ref("FreshnessCheckSchedule")
    source = (ROOT / "functions" / "freshness" / "app.py").read_text()
    assert "MaxManifestAgeHours" in source and "MissingManifests" in source


def test_failed_executions_reach_the_topic(resources: dict[str, Any]) -> None:
    rule = resources["ExecutionFailedRule"]["Properties"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert set(pattern["detail"]["status"]) == {"FAILED", "TIMED_OUT", "ABORTED"}
    assert pattern["detail"]["stateMachineArn"] == [_ref("PipelineStateMachine"), _ref("DailyRunStateMachine")]
    assert [t["Arn"] for t in rule["Targets"]] == [_ref("AlarmTopic")]
    policy = resources["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert set(policy["Principal"]["Service"]) == {"events.amazonaws.com", "cloudwatch.amazonaws.com"}
    assert resources["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"


def test_exposure_logging_goes_to_a_stream_the_api_may_only_put_to(template: dict[str, Any], resources: dict) -> None:
    env = _props(resources, "RecommendFunction")["Environment"]["Variables"]
    assert env["RECSYS_EXPOSURE_LOG"] == {
        "!If": ["ExposureLoggingEnabled", {"!Sub": "firehose://${ExposureDeliveryStream}"}, ""]
    }
    firehose = [st for st in _statements(resources, "RecommendFunction") if "firehose" in json.dumps(st["Action"])]
    assert [(st["Action"], st["Resource"]) for st in firehose] == [
        ("firehose:PutRecordBatch", {"!GetAtt": "ExposureDeliveryStream.Arn"})
    ]
    stream = resources["ExposureDeliveryStream"]
    assert stream["Condition"] == "ExposureLoggingEnabled"
    destination = stream["Properties"]["ExtendedS3DestinationConfiguration"]
    assert destination["BucketARN"] == {"!Sub": "arn:${AWS::Partition}:s3:::${RawEventsBucket}"}
    assert (destination["CompressionFormat"], destination["FileExtension"]) == ("GZIP", ".jsonl.gz")
    # Partitioned by each record's own tenant, surface and day: the folders the pipeline's raw location has.
    processors = destination["ProcessingConfiguration"]["Processors"]
    assert [p["Type"] for p in processors] == ["RecordDeAggregation", "MetadataExtraction", "AppendDelimiterToRecord"]
    extraction = processors[1]
    query = {p["ParameterName"]: p["ParameterValue"] for p in extraction["Parameters"]}["MetadataExtractionQuery"]
    assert query == "{tenant: .tenant, surface: .surface, day: .ts[0:10]}"
    prefix = destination["Prefix"]["!Sub"]
    import datetime as dt

    from recsys.serve.exposure import ServedItem, ServedList

    line = json.loads(ServedList("r1", "demo", "home", "default", dt.datetime(2026, 1, 2, 23, 59, tzinfo=dt.UTC),
                                 [ServedItem("i1", 0, 1.0)]).lines()[0])  # fmt: skip
    partition = {"tenant": line["tenant"], "surface": line["surface"], "day": line["ts"][0:10]}
    key = prefix.replace("${ExposureLogPrefix}", template["Parameters"]["ExposureLogPrefix"]["Default"])
    for name, value in partition.items():
        key = key.replace(f"!{{partitionKeyFromQuery:{name}}}", value)
    assert key == "events/demo/home/dt=2026-01-02/"  # RawEventsUri events/{tenant}/{surface} reads it as that day
    role = resources["ExposureDeliveryRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert {a for st in role for a in _list(st["Action"])} == {
        "s3:PutObject", "s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:ListBucket",
        "s3:ListBucketMultipartUploads", "logs:PutLogEvents",
    }  # fmt: skip
