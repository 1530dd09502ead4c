/**
 * uvloop's CPython 3.12 manylinux wheels from PyPI, whose `loop.*.so` ship with their debug
 * information (16 MB, 2 MB without): the real-world case for stripping. Downloaded once into the
 * persistent test store, verified against the sha256 PyPI publishes for them.
 */
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import { downloadWheel } from '../../src/python/download.js';
import { sharedTestStore } from './cache.js';

export const uvloopVersion = '0.23.0';

const wheels = {
  x86_64: {
    filename: 'uvloop-0.23.0-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl',
    url: 'https://files.pythonhosted.org/packages/51/27/c1d2f9fa977f8f42ea294604166df10e0027e6dc6cd17f85ede386c9bf36/uvloop-0.23.0-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl',
    sha256: '090865d8ce7a03986755a3ce711b7dd0d4b44eb14ab74368b717f3fad1180208',
  },
  aarch64: {
    filename: 'uvloop-0.23.0-cp312-cp312-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl',
    url: 'https://files.pythonhosted.org/packages/3d/95/a880f8ce3b87ac5b307c354e8ee480be4658d24bf01f87921d57e3530b4a/uvloop-0.23.0-cp312-cp312-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl',
    sha256: 'f7548ede3ee908cfabc0d068106e303a9a2d811af959cdf6ab85676344cedcda',
  },
} as const;

export interface UvloopWheel {
  filename: string;
  /** The wheel in the test store. */
  path: string;
  digest: `sha256:${string}`;
  /** The extension module's path inside the wheel. */
  module: string;
}

export async function uvloopWheel(arch: keyof typeof wheels): Promise<UvloopWheel> {
  const wheel = wheels[arch];
  const digest = `sha256:${wheel.sha256}` as const;
  const downloaded = await downloadWheel({ name: 'uvloop', filename: wheel.filename, url: wheel.url, hash: digest }, { store: await sharedTestStore() });
  return { filename: wheel.filename, path: downloaded.path, digest, module: `uvloop/loop.cpython-312-${arch}-linux-gnu.so` };
}

/** Writes the member `name` of a wheel (a zip) to the file `to`. */
export async function extractFromWheel(wheelPath: string, name: string, to: string): Promise<void> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) => yauzl.open(wheelPath, { lazyEntries: true }, (error, opened) => (error ? reject(error) : resolve(opened!))));
  try {
    await new Promise<void>((resolve, reject) => {
      zip.on('entry', (entry: yauzl.Entry) => {
        if (entry.fileName !== name) return zip.readEntry();
        zip.openReadStream(entry, (error, stream) => (error ? reject(error) : pipeline(stream!, createWriteStream(to)).then(resolve, reject)));
      });
      zip.on('end', () => reject(new Error(`${wheelPath} has no ${name}`)));
      zip.readEntry();
    });
  } finally {
    zip.close();
  }
}
