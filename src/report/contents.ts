/**
 * What the layers of an image hold, and what each later layer does to the earlier ones.
 *
 * `readLayerContents` reads one layer's tar as it streams: every member with its type, size,
 * mode and link target (and the sha256 of each file's content when asked, for diffs), the
 * whiteouts, and the content of the few small files owners are read from. Nothing is held but
 * one record per member and those files.
 *
 * `mergeLayers` applies the layers in order as the OCI image spec's "Applying Changesets" says
 * (image-spec layer.md): a whiteout `.wh.NAME` deletes NAME from the layers below, with all it
 * holds; an opaque whiteout `.wh..wh..opq` hides everything the layers below have in its
 * directory; both apply to lower layers only, whatever their place in the tar. An entry over an
 * existing path replaces it, unless both are directories (then only the attributes change and
 * the children stay); a non-directory over a directory takes the directory's children with it.
 * The result is the fate of every entry: visible in the image, or replaced or deleted by a
 * later layer.
 */
import type { Digest } from '../oci/digest.js';
import { readTar, type TarMemberType } from '../oci/tar-reader.js';

export interface ContentEntry {
  /** Path in the image without a leading '/', e.g. `usr/bin/python3`. */
  path: string;
  type: TarMemberType;
  /** Content bytes (0 for anything but a file; a hard link's bytes are its target's). */
  size: number;
  /** Permission bits. */
  mode: number;
  /** Symlink or hardlink target, as written. */
  linkTarget?: string;
  /** sha256 of a file's content, when the layer was read with `hash`. */
  sha256?: Digest;
}

export interface LayerContents {
  /** The layer's members, whiteouts excluded, in tar order. */
  entries: ContentEntry[];
  /** Paths deleted from the layers below by `.wh.NAME` whiteouts. */
  whiteouts: string[];
  /** Directories whose lower-layer contents an opaque whiteout hides. */
  opaque: string[];
  /** The content of the files `collect` asked for, by path. */
  files: Map<string, Buffer>;
  /** Bytes of the uncompressed tar (headers and padding included). */
  tarSize: number;
}

const whiteoutPrefix = '.wh.';
const opaqueMarker = '.wh..wh..opq';

/** A tar member's name as an image path: no leading `./` or `/`, no trailing `/`; `` for the root. */
export function imagePath(name: string): string {
  return name.replace(/^(\.?\/)+/, '').replace(/\/+$/, '').replace(/\/\.(?=\/|$)/g, '').replace(/\/{2,}/g, '/');
}

export async function readLayerContents(
  tar: AsyncIterable<Buffer>,
  options: { what: string; collect?: (path: string) => boolean; hash?: boolean },
): Promise<LayerContents> {
  const contents: LayerContents = { entries: [], whiteouts: [], opaque: [], files: new Map(), tarSize: 0 };
  const counted = (async function* () {
    for await (const chunk of tar) {
      contents.tarSize += chunk.length;
      yield chunk;
    }
  })();
  for await (const member of readTar(counted, {
    what: options.what,
    collect: (entry) => options.collect?.(imagePath(entry.name)) ?? false,
    hash: () => options.hash === true,
  })) {
    const path = imagePath(member.name);
    if (path === '') continue;
    const slash = path.lastIndexOf('/');
    const base = path.slice(slash + 1);
    const dir = slash === -1 ? '' : path.slice(0, slash);
    if (base === opaqueMarker) {
      contents.opaque.push(dir);
      continue;
    }
    if (base.startsWith(whiteoutPrefix)) {
      // `.wh..wh.plnk` and `.wh..wh.aufs` are AUFS's own bookkeeping, not deletions.
      if (!base.startsWith(`${whiteoutPrefix}${whiteoutPrefix}`)) contents.whiteouts.push(dir === '' ? base.slice(whiteoutPrefix.length) : `${dir}/${base.slice(whiteoutPrefix.length)}`);
      continue;
    }
    const entry: ContentEntry = { path, type: member.type, size: member.size, mode: member.mode };
    if (member.type === 'symlink' || member.type === 'hardlink') entry.linkTarget = member.linkname;
    if (member.sha256) entry.sha256 = member.sha256;
    contents.entries.push(entry);
    if (member.content) contents.files.set(path, member.content);
  }
  return contents;
}

/** What became of one entry of one layer. */
export type EntryFate = { state: 'visible' } | { state: 'replaced' | 'deleted'; by: number };

export interface MergedImage {
  /** Per layer, per entry (parallel to `entries`): visible, or replaced or deleted by a later layer. */
  fates: EntryFate[][];
  /** Each path of the image as it runs: the layer and entry that put it there. */
  visible: Map<string, { layer: number; entry: number }>;
}

const visibleFate: EntryFate = { state: 'visible' };

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash === -1 ? '' : path.slice(0, slash);
}

export function mergeLayers(layers: readonly Pick<LayerContents, 'entries' | 'whiteouts' | 'opaque'>[]): MergedImage {
  const fates: EntryFate[][] = layers.map((layer) => layer.entries.map(() => visibleFate));
  const visible = new Map<string, { layer: number; entry: number }>();
  const children = new Map<string, Set<string>>();

  const removeTree = (path: string, by: number, state: 'replaced' | 'deleted') => {
    const below = children.get(path);
    if (below) {
      for (const child of [...below]) removeTree(child, by, state);
      children.delete(path);
    }
    const found = visible.get(path);
    if (!found) return;
    fates[found.layer]![found.entry] = { state, by };
    visible.delete(path);
    children.get(parentOf(path))?.delete(path);
  };

  for (const [index, layer] of layers.entries()) {
    // Whiteouts first, whatever their place in the tar: they apply to the layers below only.
    for (const dir of layer.opaque) for (const child of [...(children.get(dir) ?? [])]) removeTree(child, index, 'deleted');
    for (const path of layer.whiteouts) removeTree(path, index, 'deleted');
    for (const [position, entry] of layer.entries.entries()) {
      const existing = visible.get(entry.path);
      if (existing) {
        const existingEntry = layers[existing.layer]!.entries[existing.entry]!;
        if (existingEntry.type === 'directory' && entry.type === 'directory') fates[existing.layer]![existing.entry] = { state: 'replaced', by: index };
        else removeTree(entry.path, index, 'replaced');
      }
      visible.set(entry.path, { layer: index, entry: position });
      const parent = parentOf(entry.path);
      let siblings = children.get(parent);
      if (!siblings) children.set(parent, (siblings = new Set()));
      siblings.add(entry.path);
    }
  }
  return { fates, visible };
}
