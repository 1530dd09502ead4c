/**
 * Sizes of the Debian bases uvimage assembles, beside distroless' published debian12 sizes
 * (static 2 MB, base-nossl 14.8 MB, base 20.7 MB, cc 23.4 MB: the sizes `docker images` shows,
 * i.e. the unpacked file contents, in SI megabytes). Builds every flavour for bookworm and trixie
 * on amd64 and arm64 (plus Debian's CPython on cc) from the real Debian archive, through the
 * test cache ($UVIMAGE_TEST_CACHE, else ~/.cache/uvimage-test) so a rerun downloads nothing.
 */
import { join } from 'node:path';
import { buildDebianBase, type BaseName } from '../src/base/build.js';
import type { Architecture } from '../src/facts/architectures.js';
import type { DebianSuite } from '../src/facts/debian-suites.js';
import { BlobStore } from '../src/oci/store.js';
import { testCacheDir } from '../test/harness/cache.js';

const distrolessDebian12MB: Partial<Record<BaseName, number>> = { static: 2, 'base-nossl': 14.8, base: 20.7, cc: 23.4 };

export async function runDebianBasesBench(): Promise<string> {
  const store = await BlobStore.open(join(testCacheDir(), 'store'));
  const bases: BaseName[] = ['static', 'base-nossl', 'base', 'cc', 'python3'];
  const rows: string[] = [];
  for (const suite of ['bookworm', 'trixie'] as DebianSuite[]) {
    for (const arch of ['amd64', 'arm64'] as Architecture[]) {
      for (const base of bases) {
        const started = performance.now();
        const built = await buildDebianBase({ base, suite, arch, store, env: {}, layerCache: false });
        const seconds = (performance.now() - started) / 1000;
        const reference = suite === 'bookworm' && arch === 'amd64' ? distrolessDebian12MB[base] : undefined;
        const unpacked = built.contentSize / 1e6;
        const verdict = reference === undefined ? '' : unpacked <= reference ? ' (within)' : ' (**larger**)';
        rows.push(
          `| ${base} | ${suite}/${arch} | ${built.packages.length} | ${built.layers.length} | ${unpacked.toFixed(2)} | ${(built.unpackedSize / 1e6).toFixed(2)} | ${(built.compressedSize / 1e6).toFixed(2)} | ${reference === undefined ? '–' : `${reference}${verdict}`} | ${seconds.toFixed(1)} |`,
        );
      }
    }
  }
  return [
    'Unpacked = the file contents of all layers (what `docker images` reports); tar = the uncompressed layer tars (headers and padding',
    'included); gzip = the compressed layer blobs. distroless = its published debian12 size (amd64), the target not to exceed.',
    'Time includes reading the cached .debs and writing every layer (no layer cache), with downloads already in the cache.',
    "arm64 is larger than amd64 because Debian's arm64 packages are (libc6's Installed-Size: 23 MB on arm64, 13 MB on amd64, bookworm).",
    '',
    '| base | suite/arch | packages | layers | unpacked MB | tar MB | gzip MB | distroless MB | build s |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}
