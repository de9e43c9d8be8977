#!/usr/bin/env python3
"""Write N generated ECS task definitions (default 1,000) into a directory, for timing `execrole derive`.

Modelled on tests/fixtures/taskdefs: ECR images (by tag and digest), Docker Hub images, Secrets Manager and SSM
secrets (ARNs and bare names), awslogs, environment files in S3, a few roles per file set. Deterministic.

Usage: scripts/gen_taskdefs.py DIR [N]
"""
import json
import os
import sys


def container(i, c):
    account = "111122223333"
    name = f"app{c}"
    if (i + c) % 3 == 0:
        image = "nginx:1.27"
    elif (i + c) % 3 == 1:
        image = f"{account}.dkr.ecr.us-east-1.amazonaws.com/svc{i % 50}/{name}:v{i}"
    else:
        image = f"{account}.dkr.ecr.eu-west-1.amazonaws.com/svc{i % 50}@sha256:" + f"{i:064x}"
    secrets = []
    if i % 2 == 0:
        secrets.append({"name": "DB", "valueFrom":
                        f"arn:aws:secretsmanager:us-east-1:{account}:secret:svc{i}/db-AbCdEf:password::"})
    if i % 3 == 0:
        secrets.append({"name": "FLAGS", "valueFrom": f"/svc{i}/prod/flags"})
    if i % 5 == 0:
        secrets.append({"name": "LOC", "valueFrom": f"arn:aws:ssm:us-east-1:{account}:parameter/svc{i}/locale"})
    defn = {"name": name, "image": image, "essential": c == 0,
            "environment": [{"name": "PORT", "value": "8080"}]}
    if secrets:
        defn["secrets"] = secrets
    if i % 4 != 3:
        defn["logConfiguration"] = {"logDriver": "awslogs", "options": {
            "awslogs-group": f"/ecs/svc{i}", "awslogs-region": "us-east-1", "awslogs-stream-prefix": name}}
    if i % 7 == 0:
        defn["environmentFiles"] = [{"value": f"arn:aws:s3:::cfg-{account}/svc{i}/{name}.env", "type": "s3"}]
    return defn


def taskdef(i):
    account = "111122223333"
    td = {
        "taskDefinitionArn": f"arn:aws:ecs:us-east-1:{account}:task-definition/svc{i}:{i % 9 + 1}",
        "family": f"svc{i}", "revision": i % 9 + 1,
        "executionRoleArn": f"arn:aws:iam::{account}:role/exec-{i % 20}",
        "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "512", "memory": "1024",
        "containerDefinitions": [container(i, c) for c in range(1 + i % 3)],
    }
    return {"taskDefinition": td} if i % 2 else td


def main():
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    os.makedirs(out, exist_ok=True)
    for i in range(count):
        with open(os.path.join(out, f"td-{i:04}.json"), "w") as f:
            json.dump(taskdef(i), f, indent=2)


if __name__ == "__main__":
    main()
