/**
 * Distroless bases assembled from Debian packages: the flavour's packages (src/base/flavours.ts)
 * read straight from their verified .debs in the store (src/debian/deb.ts) into a few
 * deterministic layers, with the files distroless adds and a dpkg status.d entry per package.
 * No maintainer script runs: what the scripts would do that an image needs (the CA bundle,
 * passwd/group, /tmp) is written here; the rest (ldconfig's cache, alternatives) is not needed.
 */
import { UserError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import {
  assembleImage,
  buildTimestamp,
  extendConfig,
  type AddedLayer,
  type ConfigChanges,
  type Image,
  type MediaTypeFlavour,
} from '../oci/image.js';
import type { LayerEntry } from '../oci/layer-entry.js';
import { layerEncoding, writeLayer, type WrittenLayer } from '../oci/layer-writer.js';
import { ociPlatform } from '../oci/platform.js';
import { BlobStore } from '../oci/store.js';
import { asTask, type Stage, type StageTask } from '../progress.js';
import { debLayerEntries, readDeb, type OpenedDeb } from '../debian/deb.js';
import type { Architecture } from '../facts/architectures.js';
import { debianSuites, type DebianSuite } from '../facts/debian-suites.js';
import {
  baseLayerGroup,
  distrolessEnv,
  distrolessFiles,
  fileEntry,
  flavourPackages,
  keepPackageFile,
  mergedUsrLinks,
  NONROOT,
  sortCertificatePaths,
  statusStanza,
  type FlavourName,
  type LayerGroup,
} from './flavours.js';

/** A package to install: what it is and where its verified .deb is in the store. */
export interface DebInput {
  name: string;
  version: string;
  arch: string;
  digest: Digest;
}

export type Layering = 'grouped' | 'per-package';

/** A layer written from packages, with what it holds (for history, SBOMs and tests). */
export interface PackagesLayer extends AddedLayer {
  group: string;
  packages: DebInput[];
  uncompressedSize: number;
  /** Bytes of file content (what `du --apparent-size` of the unpacked layer counts, roughly). */
  contentSize: number;
}

export interface WritePackagesLayerOptions {
  store: BlobStore;
  packages: DebInput[];
  suite: DebianSuite;
  arch: Architecture;
  mtime: number;
  /** Entries that replace whatever a package ships at their paths. */
  extra?: LayerEntry[];
  /** Called with the opened packages before the layer is written, for entries derived from their content. */
  derive?: (debs: OpenedDeb[]) => Promise<LayerEntry[]>;
  /** Which of a package's files go in (default: keepPackageFile). */
  keep?: (path: string, deb: OpenedDeb) => boolean;
  label: string;
  /** The stage the layer is counted in (written, or taken unchanged from the store). */
  layers?: Stage;
  /**
   * What the layer is made of, beyond the packages' digests (JSON-able): with it, a layer built
   * before from the same inputs is taken from the store instead of being written again. Anything
   * that shapes the bytes must be in it (the generated files' code is covered by layerFormat).
   */
  cacheKey?: unknown;
  /** The record name the plan gave the layer; the key made here must be it. */
  plannedKey?: string;
}

/** Bump when the layers written from the same packages change (filters, generated files, layout). */
export const layerFormat = 1;

export interface WrittenPackagesLayer {
  written: WrittenLayer;
  entries: number;
  contentSize: number;
}

/**
 * Writes one layer from packages (or takes it from the store when `cacheKey` names one written
 * before; its blob must still be there). Each .deb is read from the store (digest-checked as it streams),
 * its data spooled to a temp file and served to the layer writer from there; the spools are
 * removed when the layer is written or fails.
 */
/** The key text of a packages layer: everything that shapes its bytes. */
export function packagesLayerKey(options: Pick<WritePackagesLayerOptions, 'suite' | 'arch' | 'mtime' | 'packages'> & { cacheKey: unknown }): string {
  return JSON.stringify({ layerFormat, layerEncoding, suite: options.suite, arch: options.arch, mtime: options.mtime, packages: options.packages.map((pkg) => pkg.digest), key: options.cacheKey });
}

export async function writePackagesLayer(options: WritePackagesLayerOptions): Promise<WrittenPackagesLayer> {
  const write = (): Promise<WrittenPackagesLayer> => asTask(options.layers, options.label, (task) => writePackagesLayerUncached(options, task));
  if (options.cacheKey === undefined) return write();
  const key = packagesLayerKey(options as WritePackagesLayerOptions & { cacheKey: unknown });
  if (options.plannedKey !== undefined && options.plannedKey !== BlobStore.recordName(key)) throw new Error(`layer ${options.label}: its key is not the planned one`);
  return options.store.cached('debian-layers', key, write, {
    blobs: (layer) => [layer.written?.descriptor?.digest],
    hit: () => options.layers?.skip('unchanged'),
  });
}

async function writePackagesLayerUncached(options: WritePackagesLayerOptions, task: Pick<StageTask, 'advance'>): Promise<WrittenPackagesLayer> {
  const { store, suite, arch } = options;
  const { mergedUsr } = debianSuites[suite];
  const opened: OpenedDeb[] = [];
  try {
    for (const pkg of options.packages) {
      const label = `${pkg.name}_${pkg.version}_${pkg.arch}.deb`;
      const deb = await readDeb(store.openRead(pkg.digest), { spoolPath: store.tempPath('debspool'), label, mergedUsr });
      opened.push(deb);
      if (deb.control.Package !== pkg.name) throw new UserError(`${label}: its control file names package ${JSON.stringify(deb.control.Package)}`);
      const debArch = deb.control.Architecture;
      if (debArch !== 'all' && debArch !== arch) throw new UserError(`${label} is for ${debArch}, not ${arch}`);
    }
    const entries = new Map<string, { entry: LayerEntry; from: string }>();
    const add = (entry: LayerEntry, from: string): void => {
      const existing = entries.get(entry.path);
      if (!existing) {
        entries.set(entry.path, { entry, from });
        return;
      }
      const a = existing.entry;
      if (a.type === 'directory' && entry.type === 'directory') return;
      if (a.type === 'symlink' && entry.type === 'symlink' && a.target === entry.target) return;
      throw new UserError(`${options.label}: /${entry.path} is shipped by both ${existing.from} and ${from}`);
    };
    for (const deb of opened) {
      const name = deb.control.Package!;
      if (name === 'ca-certificates') {
        // Only the copyright: the certificates go in as the generated bundle (distroless' cacerts).
        for (const entry of debLayerEntries(deb, (file) => file.path === 'usr/share/doc/ca-certificates/copyright')) add(entry, deb.label);
      } else {
        const keep = options.keep ?? ((path: string) => keepPackageFile(path));
        for (const entry of debLayerEntries(deb, (file) => keep(file.path, deb))) add(entry, deb.label);
      }
      for (const entry of statusEntries(deb)) add(entry, deb.label);
    }
    const overrides = [...(options.extra ?? []), ...(options.derive ? await options.derive(opened) : [])];
    for (const entry of overrides) entries.set(entry.path, { entry, from: 'uvimage' });
    const written = await writeLayer(store, [...entries.values()].map((item) => item.entry), {
      mtime: options.mtime,
      onBytes: (bytes) => task.advance(bytes),
    });
    let contentSize = 0;
    for (const { entry } of entries.values()) if (entry.type === 'file') contentSize += entry.size;
    return { written, entries: entries.size, contentSize };
  } finally {
    await Promise.all(opened.map((deb) => deb.close()));
  }
}

/** var/lib/dpkg/status.d/<pkg> (+ .md5sums), as distroless writes them, so trivy, syft and grype see the package. */
export function statusEntries(deb: OpenedDeb): LayerEntry[] {
  const name = deb.control.Package!;
  const entries = [fileEntry(`var/lib/dpkg/status.d/${name}`, statusStanza(deb.controlText))];
  if (deb.md5sums) entries.push(fileEntry(`var/lib/dpkg/status.d/${name}.md5sums`, deb.md5sums));
  return entries;
}

/** The CA bundle from ca-certificates' certificates, concatenated in sorted path order (rules_distroless cacerts.sh). */
export async function caBundleFrom(deb: OpenedDeb): Promise<Buffer> {
  const certs = deb.files.filter((file) => file.type === 'file' && file.path.startsWith('usr/share/ca-certificates/'));
  const byPath = new Map(certs.map((file) => [file.path, file]));
  const parts: Buffer[] = [];
  for (const path of sortCertificatePaths([...byPath.keys()])) parts.push(await deb.readFile(byPath.get(path)!));
  if (parts.length === 0) throw new UserError(`${deb.label} has no certificates under /usr/share/ca-certificates`);
  return Buffer.concat(parts);
}

/** One planned layer of a base flavour: its packages and what the layer adds beside them. */
export interface BaseLayerPlan {
  group: string;
  packages: DebInput[];
  /** The merged-/usr links (bin -> usr/bin …): in the first layer, so the loader resolves from the bottom up. */
  mergedUsrLinks: boolean;
  /** The generated distroless files (CA bundle, passwd, os-release …): in the layer holding ca-certificates. */
  holdsCerts: boolean;
  /** The layer's record name (`debian-layers`), or null when layers are not reused. */
  key: string | null;
  /** Paths of its packages left out (the minimal flavour's trimmed libc6), sorted; absent: none. */
  dropped?: string[];
}

/** The layers of a flavour, first to last, and their keys. Pure: the .debs are known by digest from the index. */
export function planBaseLayers(options: {
  flavour: FlavourName;
  suite: DebianSuite;
  arch: Architecture;
  packages: Map<string, DebInput>;
  /** Extra packages (debian-packages and their closure): one layer of their own, above the flavour's. */
  extra?: DebInput[];
  mtime: number;
  layering?: Layering;
  layerCache?: boolean;
  /** The flavour's packages that stay (the minimal flavour's selection), and paths of theirs left out; default: all, whole. */
  selection?: { packages: string[]; dropped: string[] };
}): BaseLayerPlan[] {
  const { suite, arch, selection } = options;
  const names = flavourPackages(options.flavour, suite).filter((name) => !selection || selection.packages.includes(name));
  const packages = names.map((name) => {
    const pkg = options.packages.get(name);
    if (!pkg) throw new UserError(`the ${options.flavour} base for ${suite}/${arch} needs package ${name}, which was not provided`);
    return pkg;
  });
  const groups: { group: string; packages: DebInput[] }[] = [];
  if (options.layering === 'per-package') {
    for (const pkg of packages) groups.push({ group: pkg.name, packages: [pkg] });
  } else {
    for (const group of ['libc', 'base'] as LayerGroup[]) {
      const members = packages.filter((pkg) => baseLayerGroup(pkg.name) === group);
      if (members.length > 0) groups.push({ group, packages: members });
    }
  }
  if (options.extra?.length) groups.push({ group: 'extra', packages: options.extra });
  return groups.map(({ group, packages: members }, index) => {
    const mergedUsrLinks = index === 0 && debianSuites[suite].mergedUsr;
    const holdsCerts = members.some((pkg) => pkg.name === 'ca-certificates');
    // What the selection leaves out is of the flavour's packages, never of debian-packages'.
    const dropped = selection?.dropped.length && group !== 'extra' ? selection.dropped : undefined;
    const key = options.layerCache === false ? null : BlobStore.recordName(packagesLayerKey({ suite, arch, mtime: options.mtime, packages: members, cacheKey: baseLayerCacheKey(index, holdsCerts, mergedUsrLinks, dropped) }));
    return { group, packages: members, mergedUsrLinks, holdsCerts, key, ...(dropped ? { dropped } : {}) };
  });
}

function baseLayerCacheKey(index: number, holdsCerts: boolean, mergedUsrLinks: boolean, dropped: string[] | undefined): unknown {
  return { kind: 'base', index, holdsCerts, mergedUsrLinks, ...(dropped ? { dropped } : {}) };
}

export interface DebianBaseOptions {
  flavour: FlavourName;
  suite: DebianSuite;
  arch: Architecture;
  store: BlobStore;
  /** The layers to write, as planned by planBaseLayers. */
  layers: BaseLayerPlan[];
  mtime: number;
  /** The stage the layers are counted in. */
  stage?: Stage;
}

/** Writes the planned layers of a base flavour, first to last. */
export async function writeBaseLayers(options: DebianBaseOptions): Promise<PackagesLayer[]> {
  const { suite, arch, store } = options;
  const layers: PackagesLayer[] = [];
  for (const [index, planned] of options.layers.entries()) {
    const dropped = planned.dropped && new Set(planned.dropped);
    const { written, contentSize } = await writePackagesLayer({
      store,
      packages: planned.packages,
      suite,
      arch,
      mtime: options.mtime,
      extra: planned.mergedUsrLinks ? mergedUsrLinks(arch) : [],
      label: `${options.flavour}-${suite}-${arch} ${planned.group}`,
      layers: options.stage,
      cacheKey: planned.key === null ? undefined : baseLayerCacheKey(index, planned.holdsCerts, planned.mergedUsrLinks, planned.dropped),
      keep: dropped && ((path) => keepPackageFile(path) && !dropped.has(path)),
      plannedKey: planned.key ?? undefined,
      derive: planned.holdsCerts
        ? async (debs) => distrolessFiles(suite, await caBundleFrom(debs.find((deb) => deb.control.Package === 'ca-certificates')!))
        : undefined,
    });
    layers.push({
      group: planned.group,
      packages: planned.packages,
      uncompressedSize: written.uncompressedSize,
      contentSize,
      layer: { descriptor: written.descriptor, diffId: written.diffId },
      history: { created_by: `uvimage base ${options.flavour} (${suite}/${arch}): ${planned.packages.map((pkg) => `${pkg.name}=${pkg.version}`).join(' ')}`, comment: 'uvimage' },
    });
  }
  return layers;
}

/** The config distroless' flavours set: their Env, and root (or nonroot, like the :nonroot tags). */
export function baseConfigChanges(nonroot: boolean): ConfigChanges {
  return {
    Env: distrolessEnv,
    User: nonroot ? String(NONROOT) : '0',
    WorkingDir: nonroot ? '/home/nonroot' : '/',
  };
}

/** A finished image of layers and changes; its config and manifest are put in the store. */
export async function assembleDebianImage(options: {
  store: BlobStore;
  arch: Architecture;
  layers: AddedLayer[];
  changes: ConfigChanges;
  annotations?: Record<string, string>;
  flavour?: MediaTypeFlavour;
  env?: NodeJS.ProcessEnv;
}): Promise<Image> {
  const created = buildTimestamp(options.env);
  const platform = ociPlatform(options.arch);
  const config = extendConfig({ platform, added: options.layers, changes: options.changes, created: created.iso });
  const image = assembleImage({
    platform,
    config,
    layers: options.layers.map((added) => added.layer),
    annotations: { 'org.opencontainers.image.created': created.iso, ...(options.annotations ?? {}) },
    flavour: options.flavour,
  });
  await options.store.putBytes(image.config.bytes);
  await options.store.putBytes(image.manifest.bytes);
  return image;
}
