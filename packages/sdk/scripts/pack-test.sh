#!/bin/sh
# Packs the SDK as a registry would get it and puts the tarball into an empty project: the tarball must hold the
# built entry points and types, and `import` of the package must work with only its declared dependencies.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$here"
tarball=$(npm pack --silent --pack-destination "$tmp" | tail -n 1)
tar -tzf "$tmp/$tarball" > "$tmp/contents"
for f in package/package.json package/README.md package/dist/index.js package/dist/index.d.ts package/dist/generated/schema.d.ts; do
  grep -qx "$f" "$tmp/contents" || { echo "pack-test: $f is missing from $tarball" >&2; exit 1; }
done
if grep -q '^package/src/' "$tmp/contents"; then echo "pack-test: sources leaked into $tarball" >&2; exit 1; fi
# The package as an installed dependency: the tarball unpacked under node_modules, its one runtime dependency taken
# from the repository's node_modules (no registry needed).
mkdir -p "$tmp/app/node_modules/@aperture"
tar -xzf "$tmp/$tarball" -C "$tmp"
mv "$tmp/package" "$tmp/app/node_modules/@aperture/sdk"
ln -s "$here/../../node_modules/openapi-fetch" "$tmp/app/node_modules/openapi-fetch"
cd "$tmp/app"
node --input-type=module -e "
import { createAperture, multipart } from '@aperture/sdk';
const c = createAperture({ baseUrl: 'http://127.0.0.1:9' });
if (typeof c.api.GET !== 'function' || typeof multipart !== 'function') throw new Error('bad exports');
console.log('pack-test: ok');
"
