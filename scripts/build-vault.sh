#!/usr/bin/env bash
# Build a HashiCorp Vault server binary from the Go module proxy for the Vault backend
# tests (tests/integration/api/test_vault.py). Vault's go.mod replaces its api/sdk modules
# with local folders that module zips leave out, so those replaces are dropped and the
# published api/sdk versions are used. Idempotent: does nothing when the binary exists.
# Takes ~60-90 min on a busy 2-core machine the first time (~1650 packages); the Go build
# cache makes reruns fast. Vault 1.21 is BUSL-licensed: used here only to run tests.
set -euo pipefail
VERSION="${VAULT_VERSION:-v1.21.4}"
OUT="${VAULT_BIN:-$HOME/.cache/aggregator/vault-$VERSION}"
if [[ -x "$OUT" ]]; then echo "$OUT"; exit 0; fi
mkdir -p "$(dirname "$OUT")"
dir=$(go mod download -json "github.com/hashicorp/vault@$VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$dir/." "$work/" && chmod -R u+w "$work"
cd "$work"
sed -i -E '/^replace github.com\/hashicorp\/vault\/(api|sdk)/d' go.mod
# the published sdk (v0.21.0) lags the in-tree one in two signatures: adapt the callers
sed -i 's/restoredKeyName, err := b.lm.RestorePolicy(/restoredKeyName, err := keyName, b.lm.RestorePolicy(/' \
  builtin/logical/transit/path_restore.go
sed -i 's/ActivationFunc: iStore.activateDeduplication,/ActivationFunc: func(ctx context.Context, req *logical.Request, _ string) error { return iStore.activateDeduplication(ctx, req) },/' \
  vault/identity_store.go
sed -i 's/b.idStoreBackend.ActivationFunc(ctx, nil)/b.idStoreBackend.ActivationFunc(ctx, nil, "")/' \
  vault/logical_system_activation_flags.go
# "minimal": Vault's own build tag for core features (transit and kv included), ~30% fewer packages
GOFLAGS=-mod=mod go build -tags minimal -o "$OUT" . >&2
echo "$OUT"
