#!/usr/bin/env python3
"""Seed the moto emulator with a small, realistic ECS account for the execrole demo.

    scripts/seed_demo.py http://127.0.0.1:PORT

Run it with the moto virtualenv's python (scripts/moto-venv.sh prints its path). It talks to the given loopback
endpoint only. It expects a fresh emulator; any error fails loudly.
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _aws_local as L  # noqa: E402

ACCOUNT = L.ACCOUNT
ECR = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
WEB_DIGEST = "sha256:" + "3f1c5a0e9b7d2c4e6f8a0b1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f6"

TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}

# Controller-owned inline policy on api-exec, left over from an image the task no longer uses.
API_STALE_EXECROLE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "EcrPullApiOld",
            "Effect": "Allow",
            "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Resource": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/api-old",
        }
    ],
}

# Someone else's inline policy on api-exec: the controller must leave it byte-for-byte unchanged.
API_FOREIGN_TEAM_EXTRA = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "TeamExtraConfigRead",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::team-api-config/*",
        }
    ],
}

# legacy-exec is excluded by the demo config (legacy-*): whatever is here must survive untouched.
LEGACY_EXECROLE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "LegacyHandWritten",
            "Effect": "Allow",
            "Action": ["ecr:GetAuthorizationToken", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
}


def role_arn(name):
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def awslogs(group, region, prefix, create_group=False):
    opts = {"awslogs-group": group, "awslogs-region": region, "awslogs-stream-prefix": prefix}
    if create_group:
        opts["awslogs-create-group"] = "true"
    return {"logDriver": "awslogs", "options": opts}


def container(name, image, logs, essential=True):
    return {
        "name": name,
        "image": image,
        "essential": essential,
        "cpu": 0,
        "memory": 256,
        "portMappings": [],
        "logConfiguration": logs,
    }


def register(ecs, family, role, containers, tags):
    resp = ecs.register_task_definition(
        family=family,
        executionRoleArn=role_arn(role),
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=containers,
        tags=[{"key": k, "value": v} for k, v in tags.items()],
    )
    td = resp["taskDefinition"]
    if td.get("executionRoleArn") != role_arn(role):
        sys.exit(f"seed: {family}: executionRoleArn not stored as given: {td.get('executionRoleArn')!r}")
    return td["taskDefinitionArn"]


def main(argv):
    if len(argv) != 2:
        sys.exit(f"usage: {argv[0]} http://127.0.0.1:PORT")
    endpoint = L.check_endpoint(argv[1])
    sess = L.session(endpoint)
    iam = L.client(sess, "iam", endpoint)
    ecs = L.client(sess, "ecs", endpoint, "us-east-1")
    ecs_eu = L.client(sess, "ecs", endpoint, "eu-west-1")

    # Fail early if credentials resolve to anything but the emulator's default account.
    who = L.client(sess, "sts", endpoint).get_caller_identity()
    if who["Account"] != ACCOUNT:
        sys.exit(f"seed: expected account {ACCOUNT}, emulator says {who['Account']}")

    roles = ["app-exec", "api-exec", "proxy-exec", "report-exec", "legacy-exec"]
    existing = {r["RoleName"] for p in iam.get_paginator("list_roles").paginate() for r in p["Roles"]}
    for name in roles:
        if name in existing:
            continue
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(TRUST),
            Description=f"ECS task execution role {name} (execrole demo)",
            Tags=[{"Key": "purpose", "Value": "ecs-task-execution"}],
        )

    iam.put_role_policy(RoleName="api-exec", PolicyName="execrole",
                        PolicyDocument=json.dumps(API_STALE_EXECROLE, separators=(",", ":")))
    iam.put_role_policy(RoleName="api-exec", PolicyName="team-extra",
                        PolicyDocument=json.dumps(API_FOREIGN_TEAM_EXTRA, indent=2))
    iam.put_role_policy(RoleName="legacy-exec", PolicyName="execrole",
                        PolicyDocument=json.dumps(LEGACY_EXECROLE, indent=2))

    arns = {}
    # web: three revisions, tag, tag, digest; same repo, so one scoped ECR statement.
    for image in (f"{ECR}/web:1.0", f"{ECR}/web:1.1", f"{ECR}/web@{WEB_DIGEST}"):
        arns.setdefault("web", []).append(register(
            ecs, "web", "app-exec",
            [container("web", image, awslogs("/ecs/web", "us-east-1", "web"))],
            {"team": "storefront"}))
    # worker: repo path with '/', log group created on demand.
    arns["worker"] = [register(
        ecs, "worker", "app-exec",
        [container("worker", f"{ECR}/team/worker:2.3",
                   awslogs("/ecs/worker", "us-east-1", "worker", create_group=True))],
        {"team": "storefront"})]
    # api's secrets: a database password under a customer managed KMS key (needs kms:Decrypt on the key, via
    # Secrets Manager), read through a json-key suffix; a feature-flag parameter under the AWS managed key.
    kms = L.client(sess, "kms", endpoint, "us-east-1")
    sm = L.client(sess, "secretsmanager", endpoint, "us-east-1")
    ssm = L.client(sess, "ssm", endpoint, "us-east-1")
    cmk = kms.create_key(Description="api database secrets")["KeyMetadata"]["Arn"]
    db_secret = sm.create_secret(Name="api/db", SecretString='{"password":"demo"}', KmsKeyId=cmk)["ARN"]
    ssm.put_parameter(Name="/api/feature-flags", Value="demo", Type="SecureString")
    # api: cross-account ECR image plus a public sidecar that needs nothing.
    api_container = container("api", "222222222222.dkr.ecr.eu-west-1.amazonaws.com/shared/base:2024.1",
                              awslogs("/ecs/api", "us-east-1", "api"))
    api_container["secrets"] = [
        {"name": "DB_PASSWORD", "valueFrom": f"{db_secret}:password::"},
        {"name": "FEATURE_FLAGS", "valueFrom": "/api/feature-flags"},
    ]
    arns["api"] = [register(
        ecs, "api", "api-exec",
        [
            api_container,
            container("otel", "public.ecr.aws/aws-observability/aws-otel-collector:latest",
                      awslogs("/ecs/api", "us-east-1", "otel"), essential=False),
        ],
        {"team": "api"})]
    # proxy: Docker Hub image, logs shipped to another Region.
    arns["proxy"] = [register(
        ecs, "proxy", "proxy-exec",
        [container("proxy", "nginx:1.27", awslogs("/ecs/proxy", "eu-west-1", "proxy"))],
        {"team": "edge"})]
    # report: lives in eu-west-1.
    arns["report"] = [register(
        ecs_eu, "report", "report-exec",
        [container("report", f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/report:5.0",
                   awslogs("/ecs/report", "eu-west-1", "report"))],
        {"team": "finance"})]
    # legacy-batch: excluded by the demo config.
    arns["legacy-batch"] = [register(
        ecs, "legacy-batch", "legacy-exec",
        [container("batch", f"{ECR}/legacy/batch:0.9", awslogs("/ecs/legacy-batch", "us-east-1", "batch"))],
        {"team": "legacy"})]

    def last(f):
        return arns[f][-1].rsplit("/", 1)[1]

    print(f"seeded account {ACCOUNT} at {endpoint}:")
    print(f"  web ({len(arns['web'])} revisions, up to {last('web')}) -> app-exec: private ECR web by tag and by "
          f"digest (one repository statement), awslogs /ecs/web; app-exec has no inline policy yet")
    print(f"  worker ({last('worker')}) -> app-exec: ECR repo path team/worker (contains '/'), awslogs /ecs/worker "
          f"with awslogs-create-group (needs logs:CreateLogGroup); role shared with web")
    print(f"  api ({last('api')}) -> api-exec: cross-account ECR 222222222222/eu-west-1 shared/base (finding: repo "
          f"policy) + public.ecr.aws sidecar (needs nothing); secrets: api/db under a customer managed key (json-key "
          f"suffix; needs kms:Decrypt via Secrets Manager) and SecureString /api/feature-flags under the AWS managed "
          f"key (no kms:Decrypt); inline 'execrole' is STALE (repository/api-old), "
          f"inline 'team-extra' is FOREIGN and must stay byte-for-byte")
    print(f"  proxy ({last('proxy')}) -> proxy-exec: Docker Hub nginx:1.27 (no ECR), awslogs /ecs/proxy in "
          f"eu-west-1 (log Region differs from the task's); no policy yet")
    print(f"  report ({last('report')}, eu-west-1) -> report-exec: same-account ECR and awslogs in eu-west-1")
    print(f"  legacy-batch ({last('legacy-batch')}) -> legacy-exec: excluded by legacy-*; its hand-written inline "
          f"'execrole' must stay untouched")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
