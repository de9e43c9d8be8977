# The three commands: `make demo` runs execrole against a local AWS emulator; `make test` runs every test; `make lint`
# checks the code and every file in a format with its own tool. Each installs what it needs (the pinned moto[server]
# and cfn-lint virtualenvs under target/; shellcheck and promtool from Debian, see scripts/lint-tools.sh).

.PHONY: demo test lint lint-tools moto-venv unit integration fmt fuzz

# No AWS client started from here may ever try the instance-metadata service.
export AWS_EC2_METADATA_DISABLED := true

demo:
	scripts/demo.sh

test: moto-venv
	cargo test --all-targets --locked

CFN_LINT = $(or $(EXECROLE_CFN_LINT_VENV),target/cfn-lint-venv)/bin/cfn-lint

lint: lint-tools
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings
	shellcheck scripts/*.sh .ci/run
	promtool check rules deploy/prometheus/alerts.yaml
	promtool test rules deploy/prometheus/alerts.test.yaml
	promtool check config deploy/prometheus/scrape.yaml
	promtool check metrics < tests/fixtures/metrics_fresh.txt
	scripts/live-metrics.sh > target/live-metrics.txt
	promtool check metrics < target/live-metrics.txt
	$(CFN_LINT) deploy/cloudformation/*.yaml

lint-tools:
	@scripts/lint-tools.sh >/dev/null

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
