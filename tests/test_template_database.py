"""The optional Postgres database of template.yaml (DatabaseMode), rendered for given parameter values.

`Stack` evaluates the template's Conditions and Rules the way CloudFormation does for a set of parameter values, and
renders it: resources whose condition is false are dropped, each !If becomes the branch it takes, AWS::NoValue
disappears and a !Ref to a parameter becomes its value. The tests then check what a deployment with those values
would get: with the defaults, nothing of the database (no VPC, no RDS, no secret access); with a database, the VPC,
the network isolation and the secret access of exactly the functions that talk to Postgres.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.test_template import ALL_FUNCTIONS, TEMPLATE, _CfnLoader, _list, _ref

NO_VALUE = object()
DATABASE_FUNCTIONS = ("IngestFunction", "PublishFunction", "RollbackFunction", "RecommendFunction")
# The runtime contract (recsys.database.settings, recsys.serve): what the database functions read.
DATABASE_ENV = ("RECSYS_DATABASE__URL", "RECSYS_DATABASE__SECRET_ARN")
NETWORK = {
    "VpcId": "vpc-0123456789abcdef0",
    "SubnetIds": "subnet-0aaa,subnet-0bbb",
    "RouteTableIds": "rtb-0aaa,rtb-0bbb",
}
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:recsys/db-AbC123"
KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/0b7c2f3e-1111-2222-3333-444455556666"
EXISTING = {
    **NETWORK,
    "DatabaseMode": "existing",
    "ExistingDatabaseUrl": "postgresql://recsys@db.internal.example.com:5432/recsys?sslmode=require",
    "ExistingDatabaseSecretArn": SECRET_ARN,
}
# The parameters without a default (every deployment names them).
REQUIRED = {"RawEventsUri": "s3://my-raw-bucket/events/{tenant}/{surface}", "RawEventsBucket": "my-raw-bucket",
            "JwtIssuer": "https://issuer.example.com/", "JwtAudience": "recsys-api"}  # fmt: skip
AURORA_ALL = {**NETWORK, "DatabaseMode": "aurora", "DatabaseSignals": "true", "ServeFrom": "database",
              "AuroraMinCapacity": "0.5"}  # fmt: skip


class Stack:
    """template.yaml as CloudFormation sees it for `overrides` (the other parameters at their defaults)."""

    def __init__(self, template: dict[str, Any], **overrides: str) -> None:
        self.template = template
        params = template["Parameters"]
        assert set(overrides) <= set(params), set(overrides) - set(params)
        given = {**REQUIRED, **overrides}
        missing = {name for name, spec in params.items() if "Default" not in spec} - set(given)
        assert not missing, f"no value for {missing}"
        values = {name: str(given.get(name, spec.get("Default"))) for name, spec in params.items()}
        for name, value in values.items():
            pattern = params[name].get("AllowedPattern")
            assert pattern is None or re.fullmatch(pattern, value), f"{name}={value!r} is not allowed"
            assert value in map(str, params[name].get("AllowedValues", [value])), f"{name}={value!r} is not allowed"
        # Ref to a CommaDelimitedList is a list ("" is [""], as in CloudFormation); to anything else a string.
        self.params: dict[str, Any] = {
            name: value.split(",") if params[name]["Type"] == "CommaDelimitedList" else value
            for name, value in values.items()
        }
        self._conditions: dict[str, bool] = {}

    # --- Conditions and Rules ---------------------------------------------------------------------------------

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.value(self.template["Conditions"][name]))
        return self._conditions[name]

    def value(self, node: Any) -> Any:
        """A condition's or rule's intrinsic function, evaluated."""
        if not isinstance(node, dict):
            return node
        ((tag, args),) = node.items()
        match tag:
            case "!Ref":
                return self.params[args]
            case "!Condition":
                return self.condition(args)
            case "!Equals":
                left, right = (self.value(a) for a in args)
                return str(left) == str(right)
            case "!Not":
                return not self.value(args[0])
            case "!And":
                return all(self.value(a) for a in args)
            case "!Or":
                return any(self.value(a) for a in args)
            case "!Join":
                items = self.value(args[1]) if isinstance(args[1], dict) else [self.value(i) for i in args[1]]
                return args[0].join(items)
            case "!Split":
                return self.value(args[1]).split(args[0])
            case "!Select":
                return self.value(args[1])[int(args[0])]
            case "!EachMemberEquals":
                return all(member == self.value(args[1]) for member in self.value(args[0]))
        raise AssertionError(f"no evaluation for {tag} in a condition")

    def failed_rules(self) -> list[str]:
        """The AssertDescription of every rule assertion these values break (CloudFormation refuses the stack)."""
        failed = []
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" in rule and not self.value(rule["RuleCondition"]):
                continue
            failed += [a["AssertDescription"] for a in rule["Assertions"] if not self.value(a["Assert"])]
        return failed

    # --- rendering --------------------------------------------------------------------------------------------

    def render(self, node: Any) -> Any:
        if isinstance(node, dict):
            if node == _ref("AWS::NoValue"):
                return NO_VALUE
            if set(node) == {"!Ref"} and node["!Ref"] in self.params:  # a parameter: its value
                return self.params[node["!Ref"]]
            if set(node) == {"!If"}:
                name, when_true, when_false = node["!If"]
                return self.render(when_true if self.condition(name) else when_false)
            rendered = {key: self.render(value) for key, value in node.items()}
            return {key: value for key, value in rendered.items() if value is not NO_VALUE}
        if isinstance(node, list):
            return [v for v in (self.render(item) for item in node) if v is not NO_VALUE]
        return node

    @property
    def resources(self) -> dict[str, Any]:
        return {
            name: self.render(resource)
            for name, resource in self.template["Resources"].items()
            if "Condition" not in resource or self.condition(resource["Condition"])
        }

    @property
    def outputs(self) -> dict[str, Any]:
        return {
            name: self.render(output)
            for name, output in self.template["Outputs"].items()
            if "Condition" not in output or self.condition(output["Condition"])
        }

    def environment(self, fn: str) -> dict[str, Any]:
        """A function's variables merged over Globals' (SAM merges the two maps)."""
        merged = {**self.template["Globals"]["Function"]["Environment"]["Variables"]}
        merged.update(self.template["Resources"][fn]["Properties"].get("Environment", {}).get("Variables", {}))
        return self.render(merged)

    def statements(self, fn: str) -> list[dict[str, Any]]:
        """Every IAM statement the function's role gets: inline, and those of this template's managed policies."""
        resources = self.resources
        out = []
        for policy in resources[fn]["Properties"].get("Policies", []):
            if "Statement" in policy:
                out += policy["Statement"]
            else:
                out += resources[policy["!Ref"]]["Properties"]["PolicyDocument"]["Statement"]
        return out


def _actions(statements: list[dict[str, Any]], effect: str = "Allow") -> set[str]:
    return {action for st in statements if st["Effect"] == effect for action in _list(st["Action"])}


def _references(node: Any) -> set[str]:
    """Logical names a rendered value refers to: !Ref, !GetAtt and the ${Name} / ${Name.Attr} of !Sub."""
    if isinstance(node, list):
        return {name for item in node for name in _references(item)}
    if not isinstance(node, dict):
        return set()
    out = {name for value in node.values() for name in _references(value)}
    if isinstance(node.get("!Ref"), str):
        out.add(node["!Ref"])
    if "!GetAtt" in node:
        out.add(node["!GetAtt"].split(".")[0])
    if "!Sub" in node:
        text, variables = (node["!Sub"], {}) if isinstance(node["!Sub"], str) else node["!Sub"]
        out |= {m.split(".")[0] for m in re.findall(r"\$\{([A-Za-z0-9_:.]+)\}", text)}
        out -= set(variables)
    return out


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


SCENARIOS = {
    "default": {},
    "aurora": {**NETWORK, "DatabaseMode": "aurora"},
    "aurora-all": AURORA_ALL,
    "aurora-all-no-endpoints": {**AURORA_ALL, "CreateS3Endpoint": "false", "CreateSecretsManagerEndpoint": "false",
                                "CreateFirehoseEndpoint": "false", "RouteTableIds": ""},
    "existing": EXISTING,
    "existing-all-with-group-and-key": {**EXISTING, "DatabaseSignals": "true", "ServeFrom": "database",
                                        "ExistingDatabaseSecurityGroupId": "sg-0123abcd",
                                        "ExistingDatabaseSecretKmsKeyArn": KMS_KEY, "ExposureLogging": "DISABLED"},
}  # fmt: skip


# --- every scenario deploys --------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_scenario_passes_the_rules_and_refers_only_to_what_it_creates(template: dict, scenario: str) -> None:
    stack = Stack(template, **SCENARIOS[scenario])
    assert stack.failed_rules() == []
    resources, names = stack.resources, set(stack.resources) | set(template["Parameters"])
    for name, node in [*resources.items(), *stack.outputs.items()]:
        dangling = {r for r in _references(node) if not r.startswith("AWS::")} - names
        assert not dangling, f"{name} refers to {dangling}, which this scenario does not create"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DatabaseMode": "aurora"}, "needs VpcId"),
        ({"DatabaseMode": "aurora", "VpcId": NETWORK["VpcId"]}, "needs SubnetIds"),
        ({**NETWORK, "DatabaseMode": "aurora", "RouteTableIds": ""}, "needs RouteTableIds"),
        ({**NETWORK, "DatabaseMode": "existing"}, "needs ExistingDatabaseUrl"),
        ({**EXISTING, "ExistingDatabaseSecretArn": ""}, "needs ExistingDatabaseSecretArn"),
        ({"DatabaseSignals": "true"}, "DatabaseSignals true needs DatabaseMode"),
        ({"ServeFrom": "database", "DatabaseSignals": "true"}, "ServeFrom database needs DatabaseMode"),
        ({**EXISTING, "ServeFrom": "database"}, "needs DatabaseSignals true"),
        ({**AURORA_ALL, "AuroraMinCapacity": "0"}, "needs AuroraMinCapacity 0.5 or more"),
    ],
)
def test_combinations_that_cannot_work_fail_before_anything_is_created(
    template: dict, overrides: dict[str, str], message: str
) -> None:
    failed = Stack(template, **overrides).failed_rules()
    assert any(message in text for text in failed), failed


def test_parameter_patterns(template: dict) -> None:
    params = template["Parameters"]
    raw, url = params["RawEventsUri"]["AllowedPattern"], params["ExistingDatabaseUrl"]["AllowedPattern"]
    for uri in ("postgresql://recsys@db.example.com:5432/recsys?sslmode=require", "postgres://db/recsys?table=ev"):
        assert re.fullmatch(raw, uri) and re.fullmatch(url, uri), uri
    assert re.fullmatch(raw, "s3://my-raw-bucket/events/{tenant}/{surface}")
    for secretful in ("postgresql://recsys:hunter2@db/recsys", "postgresql://db/recsys?password=hunter2"):
        assert not re.fullmatch(raw, secretful) and not re.fullmatch(url, secretful), secretful
    assert re.fullmatch(url, "")  # the default: no existing database
    secret = params["ExistingDatabaseSecretArn"]["AllowedPattern"]
    assert re.fullmatch(secret, SECRET_ARN) and not re.fullmatch(secret, SECRET_ARN.removesuffix("-AbC123"))


# --- the default: nothing of it ----------------------------------------------------------------------------


def test_the_default_stack_has_no_database_no_vpc_and_no_secret_access(template: dict) -> None:
    stack = Stack(template)
    resources = stack.resources
    types = {r["Type"] for r in resources.values()}
    assert not {t for t in types if t.startswith(("AWS::RDS::", "AWS::EC2::"))}, types
    for fn in ALL_FUNCTIONS:
        assert "VpcConfig" not in resources[fn]["Properties"], fn
        env = stack.environment(fn)
        assert not {k for k in env if k.startswith(("RECSYS_DATABASE__", "AWS_ENDPOINT_URL_"))}, fn
        assert "RECSYS_SERVE_FROM" not in env, fn
        allowed = _actions(stack.statements(fn))
        assert not {a for a in allowed if a.startswith(("secretsmanager:", "kms:", "ec2:", "rds"))}, fn
    # SAM attaches AWSLambdaVPCAccessExecutionRole to a function with a VpcConfig property, even one its !If
    # leaves out: outside the VPC, NoNetworkInterfacesPolicy takes those rights back.
    for fn in DATABASE_FUNCTIONS:
        assert _ref("NoNetworkInterfacesPolicy") in resources[fn]["Properties"]["Policies"], fn
        assert "ec2:CreateNetworkInterface" in _actions(stack.statements(fn), "Deny"), fn
    assert not {name for name in stack.outputs if name.startswith("Database")}
    assert stack.environment("IngestFunction")["RECSYS_RAW_URI"] == REQUIRED["RawEventsUri"]


# --- which functions run in the VPC ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "in_vpc"),
    [
        ({**NETWORK, "DatabaseMode": "aurora"}, {"IngestFunction"}),
        (
            {**NETWORK, "DatabaseMode": "aurora", "DatabaseSignals": "true"},
            {"IngestFunction", "PublishFunction", "RollbackFunction"},
        ),
        (AURORA_ALL, set(DATABASE_FUNCTIONS)),
        (EXISTING, {"IngestFunction"}),
        ({**EXISTING, "DatabaseSignals": "true", "ServeFrom": "database"}, set(DATABASE_FUNCTIONS)),
    ],
)
def test_exactly_the_functions_that_talk_to_postgres_run_in_the_vpc(
    template: dict, overrides: dict[str, str], in_vpc: set[str]
) -> None:
    stack = Stack(template, **overrides)
    resources = stack.resources
    assert {fn for fn in ALL_FUNCTIONS if "VpcConfig" in resources[fn]["Properties"]} == in_vpc
    for fn in ALL_FUNCTIONS:
        env, statements = stack.environment(fn), stack.statements(fn)
        secret_reads = [st for st in statements if "secretsmanager:GetSecretValue" in _list(st["Action"])]
        if fn in in_vpc:
            assert resources[fn]["Properties"]["VpcConfig"] == {
                "SecurityGroupIds": [_ref("DatabaseClientSecurityGroup")],
                "SubnetIds": NETWORK["SubnetIds"].split(","),
            }
            assert set(DATABASE_ENV) <= set(env), fn
            assert len(secret_reads) == 1, fn
            assert "ec2:CreateNetworkInterface" not in _actions(statements, "Deny"), fn  # SAM's VPC policy applies
        else:
            assert not set(DATABASE_ENV) & set(env), fn
            assert not secret_reads, fn
    # The runtime's switches follow the parameters.
    assert (stack.environment("PublishFunction").get("RECSYS_DATABASE__SIGNALS") == "true") == (
        "PublishFunction" in in_vpc
    )
    assert stack.environment("RecommendFunction").get("RECSYS_SERVE_FROM", "artifacts") == (
        "database" if "RecommendFunction" in in_vpc else "artifacts"
    )


# --- Aurora ------------------------------------------------------------------------------------------------


def _ingress(resources: dict[str, Any], group: str) -> list[dict[str, Any]]:
    """Every ingress rule of a security group: inline, and AWS::EC2::SecurityGroupIngress resources on it."""
    rules = list(resources[group]["Properties"].get("SecurityGroupIngress", []))
    rules += [
        {k: v for k, v in r["Properties"].items() if k not in ("GroupId", "Description")}
        for r in resources.values()
        if r["Type"] == "AWS::EC2::SecurityGroupIngress" and r["Properties"]["GroupId"] == _ref(group)
    ]
    return [{k: v for k, v in rule.items() if k != "Description"} for rule in rules]


def _egress(resources: dict[str, Any], group: str) -> list[tuple[Any, Any]]:
    """(port, destination) of each egress rule of a security group: inline, and AWS::EC2::SecurityGroupEgress on it."""
    rules = list(resources[group]["Properties"].get("SecurityGroupEgress", []))
    rules += [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::EC2::SecurityGroupEgress" and r["Properties"]["GroupId"] == _ref(group)
    ]
    return [(r["FromPort"], r.get("CidrIp", r.get("DestinationSecurityGroupId"))) for r in rules]


def test_the_cluster_admits_postgres_only_from_the_database_functions(template: dict) -> None:
    resources = Stack(template, **AURORA_ALL).resources
    from_clients = {"SourceSecurityGroupId": _ref("DatabaseClientSecurityGroup")}
    assert _ingress(resources, "AuroraSecurityGroup") == [
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, **from_clients}
    ]
    cluster = resources["AuroraCluster"]["Properties"]
    assert cluster["VpcSecurityGroupIds"] == [_ref("AuroraSecurityGroup")]
    assert cluster["Port"] == 5432
    assert resources["AuroraInstance"]["Properties"]["PubliclyAccessible"] is False
    # The database opens no connections; the functions admit none and reach HTTPS and the cluster only.
    (nothing,) = resources["AuroraSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    assert nothing["CidrIp"] == "255.255.255.255/32"
    assert _ingress(resources, "DatabaseClientSecurityGroup") == []
    assert _egress(resources, "DatabaseClientSecurityGroup") == [
        (443, "0.0.0.0/0"),
        (5432, _ref("AuroraSecurityGroup")),
    ]
    # The interface endpoints answer the database functions only.
    assert _ingress(resources, "InterfaceEndpointSecurityGroup") == [
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, **from_clients}
    ]
    rules = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"]
    assert not [r for r in rules if "CidrIp" in r]


def test_the_cluster_is_serverless_v2_encrypted_with_a_managed_secret_and_outlives_the_stack(template: dict) -> None:
    stack = Stack(template, **AURORA_ALL)
    resources = stack.resources
    cluster = resources["AuroraCluster"]
    props = cluster["Properties"]
    assert (props["Engine"], props["EngineVersion"]) == ("aurora-postgresql", stack.params["AuroraEngineVersion"])
    assert props["ManageMasterUserPassword"] is True and "MasterUserPassword" not in props
    assert props["StorageEncrypted"] is True and props["DeletionProtection"] is True
    assert (cluster["DeletionPolicy"], cluster["UpdateReplacePolicy"]) == ("Snapshot", "Snapshot")
    assert props["ServerlessV2ScalingConfiguration"] == {"MinCapacity": "0.5", "MaxCapacity": "4"}
    assert props["DBSubnetGroupName"] == _ref("AuroraSubnetGroup")
    assert resources["AuroraSubnetGroup"]["Properties"]["SubnetIds"] == ["subnet-0aaa", "subnet-0bbb"]
    (instance,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::RDS::DBInstance"]
    assert (instance["DBInstanceClass"], instance["DBClusterIdentifier"]) == ("db.serverless", _ref("AuroraCluster"))
    # TLS only, in the parameter group of the engine's major version.
    assert resources["AuroraClusterParameterGroup"]["Properties"]["Parameters"] == {"rds.force_ssl": "1"}
    family = template["Resources"]["AuroraClusterParameterGroup"]["Properties"]["Family"]
    assert stack.value(family) == f"aurora-postgresql{stack.params['AuroraEngineVersion'].split('.')[0]}"
    # 0 ACUs (auto-pause) needs 16.3+ or any 17: the default engine can pause, and the default capacity does.
    major, minor = map(int, stack.params["AuroraEngineVersion"].split("."))
    assert (major, minor) >= (16, 3)
    assert template["Parameters"]["AuroraMinCapacity"]["Default"] == 0


def test_the_secret_permission_is_scoped_to_the_clusters_secret(template: dict) -> None:
    stack = Stack(template, **AURORA_ALL)
    cluster_secret = {"!GetAtt": "AuroraCluster.MasterUserSecret.SecretArn"}
    for fn in ALL_FUNCTIONS:
        reads = [st for st in stack.statements(fn) if any(a.startswith("secretsmanager:") for a in _list(st["Action"]))]
        if fn in DATABASE_FUNCTIONS:
            assert [(st["Action"], st["Resource"]) for st in reads] == [
                ("secretsmanager:GetSecretValue", cluster_secret)
            ]
            assert not {a for a in _actions(stack.statements(fn)) if a.startswith("kms:")}  # the AWS-managed key
            assert stack.environment(fn)["RECSYS_DATABASE__SECRET_ARN"] == cluster_secret
        else:
            assert not reads, fn
    # The endpoint itself serves that secret only.
    (policy,) = stack.resources["SecretsManagerEndpoint"]["Properties"]["PolicyDocument"]["Statement"]
    assert (policy["Action"], policy["Resource"]) == ("secretsmanager:GetSecretValue", cluster_secret)


def test_the_functions_connect_to_the_cluster_with_tls_and_no_password(template: dict) -> None:
    stack = Stack(template, **AURORA_ALL)
    url = "postgresql://recsys@${AuroraCluster.Endpoint.Address}:${AuroraCluster.Endpoint.Port}/recsys?sslmode=require"
    for fn in DATABASE_FUNCTIONS:
        env = stack.environment(fn)
        assert env["RECSYS_DATABASE__URL"] == {"!Sub": url}, fn
        assert env["RECSYS_RAW_URI"] == REQUIRED["RawEventsUri"], fn  # unchanged: may itself be a postgresql:// URI
        endpoint = env["AWS_ENDPOINT_URL_SECRETS_MANAGER"]["!Sub"]
        assert endpoint[0] == "https://${Name}" and "SecretsManagerEndpoint.DnsEntries" in json.dumps(endpoint[1])
    assert "AWS_ENDPOINT_URL_FIREHOSE" in stack.environment("RecommendFunction")
    cluster = stack.resources["AuroraCluster"]["Properties"]
    assert (cluster["MasterUsername"], cluster["DatabaseName"]) == ("recsys", "recsys")
    outputs = stack.outputs
    assert outputs["DatabaseUrl"]["Value"] == {"!Sub": url}
    assert outputs["DatabaseEndpoint"]["Value"] == {"!GetAtt": "AuroraCluster.Endpoint.Address"}
    assert outputs["DatabaseSecretArn"]["Value"] == {"!GetAtt": "AuroraCluster.MasterUserSecret.SecretArn"}


def test_the_vpc_reaches_s3_and_secrets_manager_without_a_nat_gateway(template: dict) -> None:
    resources = Stack(template, **AURORA_ALL).resources
    s3 = resources["S3GatewayEndpoint"]["Properties"]
    assert (s3["VpcEndpointType"], s3["RouteTableIds"]) == ("Gateway", ["rtb-0aaa", "rtb-0bbb"])
    assert s3["ServiceName"] == {"!Sub": "com.amazonaws.${AWS::Region}.s3"}
    for name, service in (("SecretsManagerEndpoint", "secretsmanager"), ("FirehoseEndpoint", "kinesis-firehose")):
        props = resources[name]["Properties"]
        assert props["ServiceName"] == {"!Sub": f"com.amazonaws.${{AWS::Region}}.{service}"}, name
        assert (props["VpcEndpointType"], props["SubnetIds"]) == ("Interface", ["subnet-0aaa", "subnet-0bbb"]), name
        # No private DNS: the VPC's other workloads keep their route to the service.
        assert props["PrivateDnsEnabled"] is False, name
    # Without them (a NAT gateway, or the VPC's own endpoints): none created, no endpoint URLs set.
    stack = Stack(template, **SCENARIOS["aurora-all-no-endpoints"])
    types = {r["Type"] for r in stack.resources.values()}
    assert "AWS::EC2::VPCEndpoint" not in types
    for fn in DATABASE_FUNCTIONS:
        assert not {k for k in stack.environment(fn) if k.startswith("AWS_ENDPOINT_URL_")}, fn
    # Exposure logging off: no Firehose endpoint even with ServeFrom database.
    off = Stack(template, **AURORA_ALL, ExposureLogging="DISABLED")
    assert "FirehoseEndpoint" not in off.resources and "SecretsManagerEndpoint" in off.resources


def test_a_paused_cluster_has_time_to_resume(template: dict) -> None:
    aurora, existing = Stack(template, **AURORA_ALL), Stack(template, **SCENARIOS["existing-all-with-group-and-key"])
    for fn in ("IngestFunction", "PublishFunction"):
        assert int(aurora.environment(fn)["RECSYS_DATABASE__CONNECT_TIMEOUT_S"]) >= 30, fn
        assert "RECSYS_DATABASE__CONNECT_TIMEOUT_S" not in existing.environment(fn), fn
    # The API never waits for one: ServeFrom database keeps the cluster at 0.5 ACUs or more (the Rules).
    assert "RECSYS_DATABASE__CONNECT_TIMEOUT_S" not in aurora.environment("RecommendFunction")


# --- an existing database ----------------------------------------------------------------------------------


def test_an_existing_database_gets_the_given_url_secret_key_and_security_group(template: dict) -> None:
    stack = Stack(template, **SCENARIOS["existing-all-with-group-and-key"])
    resources = stack.resources
    assert not {n for n, r in resources.items() if r["Type"].startswith("AWS::RDS::")}
    for fn in DATABASE_FUNCTIONS:
        env = stack.environment(fn)
        assert env["RECSYS_DATABASE__URL"] == EXISTING["ExistingDatabaseUrl"], fn
        assert env["RECSYS_DATABASE__SECRET_ARN"] == SECRET_ARN, fn
        statements = stack.statements(fn)
        reads = [(st["Action"], st["Resource"]) for st in statements if "secretsmanager" in json.dumps(st["Action"])]
        assert reads == [("secretsmanager:GetSecretValue", SECRET_ARN)], fn
        (decrypt,) = [st for st in statements if "kms:Decrypt" in _list(st["Action"])]
        assert decrypt["Resource"] == KMS_KEY
        assert decrypt["Condition"] == {
            "StringEquals": {"kms:ViaService": {"!Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}
        }
    # The stack admits the functions to the database's own group, on its port, and they may reach only that group.
    rule = resources["ExistingDatabaseIngressFromDatabaseClients"]["Properties"]
    assert (rule["GroupId"], rule["SourceSecurityGroupId"]) == ("sg-0123abcd", _ref("DatabaseClientSecurityGroup"))
    assert rule["FromPort"] == rule["ToPort"] == "5432"
    assert _egress(resources, "DatabaseClientSecurityGroup") == [
        (443, "0.0.0.0/0"),
        ("5432", "sg-0123abcd"),
    ]
    # Without the key: no kms:Decrypt at all (the secret is under the AWS-managed key).
    plain = Stack(template, **EXISTING)
    assert not {a for a in _actions(plain.statements("IngestFunction")) if a.startswith("kms:")}
    assert "ExistingDatabaseIngressFromDatabaseClients" not in plain.resources
    # Without the database's group, the functions may reach its port anywhere (only the URL knows where it is).
    assert _egress(plain.resources, "DatabaseClientSecurityGroup") == [(443, "0.0.0.0/0"), ("5432", "0.0.0.0/0")]
