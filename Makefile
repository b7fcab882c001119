# S/MIME proxy gateway: the commands a new engineer needs.
SHELL := /bin/bash
CARGO ?= cargo
APT_PACKAGES := openssl libssl-dev pkg-config libnss3-tools gpgsm python3 postfix systemd

.PHONY: run test deps lint bench demo fuzz fuzz-deps fuzz-api difftest clean-data

## make run: start the gateway on localhost with a fresh data directory (./run-data)
run:
	$(CARGO) build --release -p gateway --bin smime-gateway
	./target/release/smime-gateway run-default --data-dir ./run-data

## make test: install the command-line peers the tests use, then lint and run every test.
## Every test runs on the default crypto backend (aws-lc-rs); the engine-level tests (the
## provider itself across both backends, the CMS engine against openssl, proxy issuance) run
## once more on the pure-Rust RustCrypto backend.
RUST_CRYPTO := --no-default-features --features rust-crypto
test: deps lint
	$(CARGO) test --workspace --all-targets
	$(CARGO) test -p crypto-provider --all-features
	$(CARGO) test -p gateway $(RUST_CRYPTO) --test crafted_cms --test openssl_to_engine \
	  --test engine_to_openssl --test one_reading --test hostile_input --test ec_interop \
	  --test x25519_interop
	$(CARGO) test -p certstore $(RUST_CRYPTO) --test proxy

deps:
	@missing=""; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v cmsutil >/dev/null || missing="$$missing libnss3-tools"; \
	command -v gpgsm   >/dev/null || missing="$$missing gpgsm"; \
	test -x /usr/sbin/postfix     || missing="$$missing postfix"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	pkg-config --exists openssl 2>/dev/null || missing="$$missing libssl-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	# The fuzz targets are their own workspace: type-check them so they cannot rot unseen.
	CARGO_TARGET_DIR=$(CURDIR)/target $(CARGO) check --manifest-path fuzz/Cargo.toml --bins

## make bench: engine benchmarks against openssl cms; results in bench/RESULTS.md
bench:
	./bench/run.sh

## make demo: the whole story on localhost in under a minute
demo:
	$(CARGO) build --release -p gateway --bin smime-gateway
	$(CARGO) run --release -p integration-tests --bin demo

## make difftest: mutated signed/encrypted mail read by the engine and by openssl cms; every
## disagreement must be a documented one (integration-tests/difftest-known.tsv). DIFF_SECONDS bounds it.
difftest: deps
	DIFF_SECONDS=$${DIFF_SECONDS:-60} $(CARGO) run -p integration-tests --bin difftest

## make fuzz: every libFuzzer target in fuzz/ for FUZZ_SECONDS each (default 60), one at a time,
## on the stable toolchain (RUSTC_BOOTSTRAP=1, no sanitizer). Findings land in
## fuzz/artifacts/<target>/; the grown corpus in fuzz/corpus/<target>/. Not part of make test.
FUZZ_TARGETS ?= mime_open cms ber certificate smtp admin_api
fuzz: fuzz-deps
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build -s none
	set -e; cd fuzz; for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t; echo "== $$t ($${FUZZ_SECONDS:-60} s)"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -s none $$t corpus/$$t seeds/$$t -- \
	    -max_total_time=$${FUZZ_SECONDS:-60} -max_len=65536 -timeout=20 -rss_limit_mb=2048 \
	    -print_final_stats=1; \
	done

fuzz-deps:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked

## make fuzz-api: schemathesis against the served OpenAPI document (no 5xx, no undocumented status)
fuzz-api:
	./admin-api/fuzz/run.sh

clean-data:
	rm -rf ./run-data
