/**
 * Test helper: the files of an image in the store, as the layers leave them (later layers win),
 * read with the .deb reader's tar reader. Small files keep their content; every file's first
 * bytes are looked at for ELF headers.
 */
import { createGunzip } from 'node:zlib';
import { readTar, type TarMember } from '../../src/oci/tar-reader.js';
import type { Digest } from '../../src/oci/digest.js';
import type { ImageConfig, ImageManifest } from '../../src/oci/image.js';
import type { BlobStore } from '../../src/oci/store.js';

export interface ImageFile {
  type: TarMember['type'];
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linkname: string;
  /** Content of files up to 256 KiB. */
  content?: Buffer;
  /** ELF e_machine (62 x86-64, 183 aarch64) of an ELF file. */
  elfMachine?: number;
  /** Which layer (0-based) it came from. */
  layer: number;
}

export interface ImageContents {
  manifest: ImageManifest;
  config: ImageConfig;
  files: Map<string, ImageFile>;
}

export async function readImage(store: BlobStore, manifestDigest: Digest): Promise<ImageContents> {
  const manifest = JSON.parse((await store.readBytes(manifestDigest)).toString('utf8')) as ImageManifest;
  const config = JSON.parse((await store.readBytes(manifest.config.digest)).toString('utf8')) as ImageConfig;
  const files = new Map<string, ImageFile>();
  for (const [layer, descriptor] of manifest.layers.entries()) {
    const tar = store.openRead(descriptor.digest).pipe(createGunzip());
    for await (const member of readTar(tar, { what: `layer ${descriptor.digest}`, collect: (m) => m.size <= 32 * 1024 * 1024, maxCollect: 32 * 1024 * 1024 })) {
      const path = member.name.replace(/\/$/, '');
      const content = member.content;
      const file: ImageFile = { type: member.type, mode: member.mode, uid: member.uid, gid: member.gid, size: member.size, linkname: member.linkname, layer };
      if (content && content.length <= 256 * 1024) file.content = content;
      if (content && content.length >= 20 && content.readUInt32BE(0) === 0x7f454c46) file.elfMachine = content.readUInt16LE(18);
      files.set(path, file);
    }
  }
  return { manifest, config, files };
}

/** The packages an image's dpkg status.d names, sorted. */
export function statusPackages(files: Map<string, ImageFile>): string[] {
  return [...files.keys()]
    .filter((path) => /^var\/lib\/dpkg\/status\.d\/[^/]+$/.test(path) && !path.endsWith('.md5sums'))
    .map((path) => path.slice('var/lib/dpkg/status.d/'.length))
    .sort();
}
