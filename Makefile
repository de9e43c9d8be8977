# The two commands: `make demo` runs execrole against a local AWS emulator; `make test` runs every test.
# Both install what they need (the pinned moto[server] virtualenv under target/).

.PHONY: demo test lint moto-venv unit integration fmt fuzz

# No AWS client started from here may ever try the instance-metadata service.
export AWS_EC2_METADATA_DISABLED := true

demo:
	scripts/demo.sh

test: moto-venv
	cargo test --all-targets --locked

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

moto-venv:
	@scripts/moto-venv.sh >/dev/null

unit:
	cargo test --lib --locked

integration: moto-venv
	cargo test --test integration --locked

# The long fuzzing run (RELIABILITY.md): a million inputs per parser, optimised. `make test` runs 10 000 each.
fuzz:
	EXECROLE_FUZZ_INPUTS=$${EXECROLE_FUZZ_INPUTS:-1000000} cargo test --release --locked --test fuzz
