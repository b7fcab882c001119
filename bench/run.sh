#!/usr/bin/env bash
# `make bench`: engine benchmarks (ours vs `openssl cms`, same files, same run) and the
# end-to-end SMTP benchmark; folds the figures into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# `bench/run.sh --assemble-only` rebuilds RESULTS.md from the parts already measured.
if [ "${1:-}" != "--assemble-only" ]; then
  # The engine on each crypto backend: the default (aws-lc-rs), then the pure-Rust one.
  cargo bench -p gateway --bench engine
  cargo bench -p gateway --no-default-features --features rust-crypto --bench engine
  cargo bench -p gateway --bench hostile
  if [ -f integration-tests/src/bin/e2e_bench.rs ]; then
    cargo build --release -p gateway --bin smime-gateway
    cargo run --release -p integration-tests --bin e2e_bench
    # The same on the pure-Rust backend: a build of its own (target/rust-crypto), which the
    # benchmark runs and labels from its `--version`.
    CARGO_TARGET_DIR=target/rust-crypto cargo build --release -p gateway --bin smime-gateway \
      --no-default-features --features rust-crypto
    SMIME_GATEWAY_BIN="$PWD/target/rust-crypto/release/smime-gateway" \
      cargo run --release -p integration-tests --bin e2e_bench -- --out bench/e2e-rust-crypto.md
  fi
fi
{
  echo "# Benchmark results"
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(openssl version)."
  echo "Produced by \`make bench\` on $(date -u +%Y-%m-%d), at commit $(git rev-parse --short HEAD)."
  echo
  echo "## Engine: decrypt+verify and sign+encrypt against \`openssl cms\`"
  echo
  echo "### Backend aws-lc-rs (the default)"
  echo
  cat bench/engine-aws-lc-rs.md
  echo
  echo "### Backend rust-crypto (\`--no-default-features --features rust-crypto\`)"
  echo
  cat bench/engine-rust-crypto.md
  echo
  echo "## Hostile inputs: crafted message against an ordinary one of the same size"
  echo
  echo "CPU time of the benchmark thread, median of 5, both messages in the same run; target ≤ 5."
  echo
  cat bench/hostile.md
  echo
  if [ -f bench/e2e.md ]; then
    echo "## End to end over SMTP"
    echo
    echo "### Backend aws-lc-rs (the default)"
    echo
    cat bench/e2e.md
    echo
  fi
  if [ -f bench/e2e-rust-crypto.md ]; then
    echo "### Backend rust-crypto"
    echo
    cat bench/e2e-rust-crypto.md
    echo
  fi
  cat bench/ANALYSIS.md
} > bench/RESULTS.md
echo "wrote bench/RESULTS.md"
