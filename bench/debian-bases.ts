/**
 * Sizes of the Debian bases uvimage assembles, beside distroless' published debian12 sizes
 * (static 2 MB, base-nossl 14.8 MB, base 20.7 MB, cc 23.4 MB: the sizes `docker images` shows,
 * i.e. the unpacked file contents, in SI megabytes). Builds every flavour for bookworm and trixie
 * on amd64 and arm64 (plus Debian's CPython on cc) from the real Debian archive, through the
 * test cache ($UVIMAGE_TEST_CACHE, else ~/.cache/uvimage-test) so a rerun downloads nothing.
 */
import { createReadStream } from 'node:fs';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGunzip } from 'node:zlib';
import { buildDebianBase, type BaseName } from '../src/base/build.js';
import { readLayerContents } from '../src/report/contents.js';
import { run } from './build.js';
import type { Architecture } from '../src/facts/architectures.js';
import type { DebianSuite } from '../src/facts/debian-suites.js';
import { BlobStore } from '../src/oci/store.js';
import { testCacheDir } from '../test/harness/cache.js';
import { standaloneMirror } from '../test/harness/standalone-python.js';

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
  rows.push(await minimalBaseRow(join(repo, 'examples/fastapi-hello')), await minimalBaseRow(join(repo, 'test/fixtures/projects/cli-scripts')));
  return [
    'Unpacked = the file contents of all layers (what `docker images` reports); tar = the uncompressed layer tars (headers and padding',
    'included); gzip = the compressed layer blobs. distroless = its published debian12 size (amd64), the target not to exceed.',
    'Time includes reading the cached .debs and writing every layer (no layer cache), with downloads already in the cache.',
    "arm64 is larger than amd64 because Debian's arm64 packages are (libc6's Installed-Size: 23 MB on arm64, 13 MB on amd64, bookworm).",
    'minimal is the base `uvimage build <project> --flavour minimal` computes for that image (what its ELF files load; the runtime is the',
    "CPython 3.12.1 stand-in, the test cache warm): packages kept of cc's 14, time the whole build. Target (for the example): ≤ 12 MB unpacked.",
    "The example keeps libstdc++6 (protobuf's upb module is C++) and with it glibc's gconv modules (7.9 MB), because libstdc++ imports iconv_open;",
    'cli-scripts (click, typer, pydantic) has no C++ and no iconv_open caller.',
    '',
    '| base | suite/arch | packages | layers | unpacked MB | tar MB | gzip MB | distroless MB | build s |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}

const repo = fileURLToPath(new URL('..', import.meta.url));

/** The minimal flavour's base for a project, measured from the image the CLI builds. */
async function minimalBaseRow(source: string): Promise<string> {
  const mirror = await standaloneMirror('3.12.1');
  const work = await mkdtemp(join(tmpdir(), 'uvimage-bench-minimal-'));
  try {
    const project = join(work, basename(source));
    await cp(source, project, { recursive: true });
    const layout = join(work, 'oci');
    const { seconds, stdout } = run('npx', ['tsx', 'src/cli/main.ts', 'build', project, '--flavour', 'minimal', '--oci', layout, '--json', '--cache-dir', join(testCacheDir(), 'store')], {
      UVIMAGE_PYTHON_MIRROR: `file://${mirror.dir}`,
      UVIMAGE_PYTHON_DOWNLOADS_JSON: mirror.metadataPath,
    });
    const report = (JSON.parse(stdout) as { platforms: { layers: { role: string; digest: string; size: number }[]; minimal: { packages: string[] } }[] }).platforms[0]!;
    const baseLayers = report.layers.filter((layer) => layer.role.startsWith('base'));
    let content = 0;
    let tar = 0;
    for (const layer of baseLayers) {
      const blob = join(layout, 'blobs', ...layer.digest.split(':'));
      const contents = await readLayerContents(createReadStream(blob).pipe(createGunzip()), { what: layer.digest });
      content += contents.entries.reduce((sum, entry) => sum + entry.size, 0);
      tar += contents.tarSize;
    }
    const gzip = baseLayers.reduce((sum, layer) => sum + layer.size, 0);
    // The target is the example's; other projects are shown beside it.
    const target = source.endsWith('examples/fastapi-hello') ? `; target ≤ 12 MB: ${content / 1e6 <= 12 ? 'met' : '**missed**'}` : '';
    return `| minimal (${relative(repo, source)}${target}) | trixie/amd64 | ${report.minimal.packages.length} | ${baseLayers.length} | ${(content / 1e6).toFixed(2)} | ${(tar / 1e6).toFixed(2)} | ${(gzip / 1e6).toFixed(2)} | – | ${seconds.toFixed(1)} |`;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
