#!/bin/sh
# Installs a build of terraform-provider-agyn into a Terraform filesystem
# mirror and writes a CLI configuration that takes agyn/agyn from there (and
# every other provider from its registry), so that `terraform init` works as
# for any provider, with any backend, and records agyn/agyn in the
# dependency lock file.
#
#   examples/terraform/install-provider.sh [MIRROR_DIR]
#   export TF_CLI_CONFIG_FILE="<MIRROR_DIR>.tfrc"     # the script prints it
#
# MIRROR_DIR defaults to target/terraform-mirror in the repository; the CLI
# configuration is written next to it, as MIRROR_DIR.tfrc. The script builds
# the provider (`cargo build --release`, which needs protoc) unless
# AGYN_PROVIDER_BINARY names a binary to install instead.
set -eu

repo=$(cd "$(dirname "$0")/../.." && pwd)
mirror=${1:-$repo/target/terraform-mirror}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/terraform-provider-agyn/Cargo.toml" | head -n 1)
if [ -z "$version" ]; then
  echo "install-provider.sh: no version in terraform-provider-agyn/Cargo.toml" >&2
  exit 1
fi

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  FreeBSD) os=freebsd ;;
  *) echo "install-provider.sh: unsupported system $(uname -s)" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "install-provider.sh: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac

binary=${AGYN_PROVIDER_BINARY:-}
if [ -z "$binary" ]; then
  (cd "$repo" && cargo build --release --locked -p terraform-provider-agyn)
  binary=${CARGO_TARGET_DIR:-$repo/target}/release/terraform-provider-agyn
fi

# Terraform's unpacked mirror layout:
# <mirror>/<registry host>/<namespace>/<type>/<version>/<os>_<arch>/terraform-provider-<type>_v<version>
mkdir -p "$mirror"
mirror=$(cd "$mirror" && pwd)
dir="$mirror/registry.terraform.io/agyn/agyn/$version/${os}_$arch"
mkdir -p "$dir"
cp "$binary" "$dir/terraform-provider-agyn_v$version.tmp"
chmod 0755 "$dir/terraform-provider-agyn_v$version.tmp"
mv "$dir/terraform-provider-agyn_v$version.tmp" "$dir/terraform-provider-agyn_v$version"

config="$mirror.tfrc"
cat >"$config" <<EOF
# Written by examples/terraform/install-provider.sh.
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["agyn/agyn"]
  }
  direct {
    exclude = ["agyn/agyn"]
  }
}
EOF

cat <<EOF
Installed agyn/agyn $version (${os}_$arch) into $mirror.
Use it with:
  export TF_CLI_CONFIG_FILE="$config"
  terraform init
A working directory that ran init with an earlier build of the same version
records that build's checksum; take the new one with:
  terraform providers lock -fs-mirror="$mirror" agyn/agyn
EOF
