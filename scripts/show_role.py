#!/usr/bin/env python3
"""Show an IAM role's inline policies from the moto emulator.

    scripts/show_role.py http://127.0.0.1:PORT ROLE            # inline and attached policy names
    scripts/show_role.py http://127.0.0.1:PORT ROLE POLICY     # names, then POLICY's document, compact JSON
    scripts/show_role.py --raw http://127.0.0.1:PORT ROLE POLICY
                                                               # only POLICY's document text exactly as IAM returns
                                                               # it (URL-decoded, not re-serialised): for byte-for-byte
                                                               # comparisons

Exits 1 when the role or the policy does not exist.
"""
import json
import os
import sys
from urllib.parse import unquote

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _aws_local as L  # noqa: E402


def raw_policy_text(sess, endpoint, role, policy):
    """GetRolePolicy without botocore's automatic JSON decoding: the stored text, URL-decoded only."""
    from botocore.handlers import json_decode_policies

    iam = L.client(sess, "iam", endpoint)
    iam.meta.events.unregister("after-call.iam", json_decode_policies)
    doc = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    if isinstance(doc, dict):  # handler not registered under that name in this botocore: best effort
        return json.dumps(doc, separators=(",", ":"))
    return unquote(doc) if "%" in doc else doc


def main(argv):
    args = argv[1:]
    raw = False
    if args and args[0] == "--raw":
        raw, args = True, args[1:]
    if len(args) not in (2, 3) or (raw and len(args) != 3):
        sys.exit(__doc__)
    endpoint = L.check_endpoint(args[0])
    role = args[1]
    policy = args[2] if len(args) == 3 else None
    sess = L.session(endpoint)
    iam = L.client(sess, "iam", endpoint)
    errors = iam.exceptions

    try:
        if raw:
            sys.stdout.write(raw_policy_text(sess, endpoint, role, policy) + "\n")
            return 0
        names = [n for p in iam.get_paginator("list_role_policies").paginate(RoleName=role)
                 for n in p["PolicyNames"]]
        attached = [a["PolicyArn"] for p in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role)
                    for a in p["AttachedPolicies"]]
        print(f"{role}: inline policies: {', '.join(sorted(names)) or '(none)'}; "
              f"attached: {', '.join(attached) or '(none)'}")
        if policy is not None:
            doc = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
            if isinstance(doc, str):
                doc = json.loads(unquote(doc))
            print(f"{role}/{policy}: {json.dumps(doc, separators=(',', ':'))}")
    except errors.NoSuchEntityException as e:
        print(f"show_role: {e.response['Error'].get('Message', e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
