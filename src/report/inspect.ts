/**
 * `uvimage inspect`: where an image's bytes go. `analyzeImage` reads every layer once (as a
 * stream, see image-source.ts), merges them (contents.ts) and names the owner of every entry
 * (owners.ts); `inspectReport` turns that into the report for people, scripts and the HTML page:
 * per layer its compressed and uncompressed size and what it holds by owner, the image's largest
 * files, what later layers shadow, its components, and for uvimage's images what trimming took
 * out of the runtime.
 */
import { asTask, formatBytes, stages, type Progress } from '../progress.js';
import type { Digest } from '../oci/digest.js';
import type { ImageConfig } from '../oci/image.js';
import { formatPlatform } from '../oci/platform.js';
import type { TrimmedGroup } from '../runtime/standalone.js';
import { Annotation } from '../oci/image.js';
import { mergeLayers, readLayerContents, type LayerContents, type MergedImage } from './contents.js';
import type { Compression, SourceImage } from './image-source.js';
import { assignOwners, isOwnerMetadata, ownerKey, type DebianPackage, type Owner, type Ownership, type PythonDistribution, type PythonRuntime } from './owners.js';

export interface LayerAnalysis {
  /** 0-based. */
  index: number;
  mediaType?: string;
  /** The blob's digest (computed while reading where the source does not name it). */
  digest: Digest;
  diffId: Digest;
  /** How the blob is compressed (a classic docker-archive's layers are not). */
  compression: Compression;
  /** Bytes of the blob as the source holds it. */
  compressedSize: number;
  uncompressedSize: number;
  createdBy?: string;
  contents: LayerContents;
}

export interface ImageAnalysis {
  name: string;
  transport: SourceImage['transport'];
  platform: string;
  manifestDigest?: Digest;
  configDigest: Digest;
  annotations: Record<string, string>;
  config: ImageConfig;
  layers: LayerAnalysis[];
  merged: MergedImage;
  ownership: Ownership;
}

/**
 * Reads and analyses every layer. `hash` also takes each file's sha256 (diff needs them);
 * `collect` names more small files to keep the content of, beside the owners' metadata (SBOMs
 * read copyright files).
 */
export async function analyzeImage(source: SourceImage, options: { hash?: boolean; progress?: Progress; collect?: (path: string) => boolean } = {}): Promise<ImageAnalysis> {
  const createdBy = layerHistory(source.config, source.layers.length);
  const layers: LayerAnalysis[] = [];
  const stage = options.progress?.stage(stages.readLayers(source.name));
  stage?.expect(source.layers.length);
  for (const layer of source.layers) {
    const what = `${source.name}: layer ${layer.index + 1}`;
    let blob: { digest: Digest; compression: Compression } | undefined;
    let contents: LayerContents;
    try {
      const extra = options.collect;
      const collect = extra ? (path: string) => isOwnerMetadata(path) || extra(path) : isOwnerMetadata;
      contents = await asTask(stage, `layer ${layer.index + 1}`, () => readLayerContents(layer.openTar((read) => (blob = read)), { what, collect, hash: options.hash }));
    } catch (error) {
      stage?.finish();
      throw error;
    }
    layers.push({
      index: layer.index,
      mediaType: layer.mediaType,
      digest: blob!.digest,
      diffId: layer.diffId,
      compression: blob!.compression,
      compressedSize: layer.size,
      uncompressedSize: contents.tarSize,
      createdBy: createdBy[layer.index],
      contents,
    });
  }
  stage?.finish();
  const merged = mergeLayers(layers.map((layer) => layer.contents));
  const ownership = assignOwners(
    layers.map((layer) => layer.contents),
    merged,
    createdBy,
  );
  return {
    name: source.name,
    transport: source.transport,
    platform: formatPlatform(source.platform),
    manifestDigest: source.manifestDigest,
    configDigest: source.configDigest,
    annotations: source.annotations,
    config: source.config,
    layers,
    merged,
    ownership,
  };
}

/** The history's `created_by` of each layer: entries marked empty_layer have none. */
function layerHistory(config: ImageConfig, count: number): (string | undefined)[] {
  const entries = (Array.isArray(config.history) ? config.history : []).filter((entry) => entry && !entry.empty_layer);
  return Array.from({ length: count }, (_unused, index) => {
    const text = entries[index]?.created_by;
    return typeof text === 'string' ? text : undefined;
  });
}

/** The annotation uvimage's build puts on a platform manifest: what trimming took from the runtime. */

/** `dev.uvimage.runtime.trimmed` read: a JSON array of {rule, files, bytes}; a malformed one is a warning, not an error. */
export function readTrimmedAnnotation(annotations: Record<string, string>): { trimmed?: TrimmedGroup[]; warning?: string } {
  const text = annotations[Annotation.runtimeTrimmed];
  if (text === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { warning: `annotation ${Annotation.runtimeTrimmed} is not JSON; what trimming removed is not shown` };
  }
  const valid =
    Array.isArray(value) &&
    value.every(
      (group) =>
        typeof group === 'object' &&
        group !== null &&
        typeof (group as TrimmedGroup).rule === 'string' &&
        Number.isSafeInteger((group as TrimmedGroup).files) &&
        (group as TrimmedGroup).files >= 0 &&
        Number.isSafeInteger((group as TrimmedGroup).bytes) &&
        (group as TrimmedGroup).bytes >= 0,
    );
  if (!valid) return { warning: `annotation ${Annotation.runtimeTrimmed} is not an array of {rule, files, bytes}; what trimming removed is not shown` };
  return { trimmed: (value as TrimmedGroup[]).map(({ rule, files, bytes }) => ({ rule, files, bytes })) };
}

export interface OwnerTotal extends Owner {
  files: number;
  bytes: number;
}

export interface FileRow {
  /** Absolute path in the image. */
  path: string;
  size: number;
  /** 1-based layer number. */
  layer: number;
  owner: Owner;
}

export interface ShadowedRow extends FileRow {
  /** 1-based number of the layer that replaced or deleted it. */
  by: number;
  state: 'replaced' | 'deleted';
}

export interface LayerReport {
  /** 1-based. */
  number: number;
  digest: Digest;
  diffId: Digest;
  mediaType?: string;
  compression: Compression;
  compressedSize: number;
  uncompressedSize: number;
  createdBy?: string;
  /** Entries other than directories, and their bytes. */
  files: number;
  bytes: number;
  owners: OwnerTotal[];
  /** What of this layer a later layer replaced or deleted. */
  shadowed: { files: number; bytes: number };
}

export interface InspectReport {
  image: {
    name: string;
    transport: SourceImage['transport'];
    platform: string;
    manifestDigest?: Digest;
    configDigest: Digest;
    compressedSize: number;
    uncompressedSize: number;
    /** Files (not directories) of the image as it runs, and their bytes. */
    files: number;
    bytes: number;
  };
  layers: LayerReport[];
  /** Owners of the image as it runs (shadowed files not counted), largest first. */
  owners: OwnerTotal[];
  components: { debian: DebianPackage[]; python: PythonDistribution[]; runtime?: PythonRuntime; project?: { name: string; version?: string } };
  largest: FileRow[];
  shadowed: { files: number; bytes: number; largest: ShadowedRow[] };
  trimmed?: TrimmedGroup[];
  warnings: string[];
}

function addTo(totals: Map<string, OwnerTotal>, owner: Owner, bytes: number): void {
  const key = ownerKey(owner);
  const total = totals.get(key) ?? { ...owner, files: 0, bytes: 0 };
  total.files++;
  total.bytes += bytes;
  totals.set(key, total);
}

const bySizeThenPath = <T extends { size: number; path: string }>(a: T, b: T) => b.size - a.size || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
const byBytesThenName = (a: OwnerTotal, b: OwnerTotal) => b.bytes - a.bytes || (ownerKey(a) < ownerKey(b) ? -1 : 1);

export function inspectReport(analysis: ImageAnalysis, options: { top: number }): InspectReport {
  const { layers, merged, ownership } = analysis;
  const imageOwners = new Map<string, OwnerTotal>();
  const largest: FileRow[] = [];
  const shadowed: ShadowedRow[] = [];
  let files = 0;
  let bytes = 0;
  let shadowedFiles = 0;
  let shadowedBytes = 0;
  const layerReports = layers.map((layer): LayerReport => {
    const owners = new Map<string, OwnerTotal>();
    const report: LayerReport = {
      number: layer.index + 1,
      digest: layer.digest,
      diffId: layer.diffId,
      mediaType: layer.mediaType,
      compression: layer.compression,
      compressedSize: layer.compressedSize,
      uncompressedSize: layer.uncompressedSize,
      createdBy: layer.createdBy,
      files: 0,
      bytes: 0,
      owners: [],
      shadowed: { files: 0, bytes: 0 },
    };
    for (const [position, entry] of layer.contents.entries.entries()) {
      if (entry.type === 'directory') continue;
      const owner = ownership.owners[layer.index]![position]!;
      const fate = merged.fates[layer.index]![position]!;
      report.files++;
      report.bytes += entry.size;
      addTo(owners, owner, entry.size);
      const row: FileRow = { path: `/${entry.path}`, size: entry.size, layer: layer.index + 1, owner };
      if (fate.state === 'visible') {
        files++;
        bytes += entry.size;
        addTo(imageOwners, owner, entry.size);
        largest.push(row);
      } else {
        report.shadowed.files++;
        report.shadowed.bytes += entry.size;
        shadowedFiles++;
        shadowedBytes += entry.size;
        shadowed.push({ ...row, by: fate.by + 1, state: fate.state });
      }
    }
    report.owners = [...owners.values()].sort(byBytesThenName);
    return report;
  });
  const trimmed = readTrimmedAnnotation(analysis.annotations);
  return {
    image: {
      name: analysis.name,
      transport: analysis.transport,
      platform: analysis.platform,
      manifestDigest: analysis.manifestDigest,
      configDigest: analysis.configDigest,
      compressedSize: layers.reduce((sum, layer) => sum + layer.compressedSize, 0),
      uncompressedSize: layers.reduce((sum, layer) => sum + layer.uncompressedSize, 0),
      files,
      bytes,
    },
    layers: layerReports,
    owners: [...imageOwners.values()].sort(byBytesThenName),
    components: { debian: ownership.debian, python: ownership.python, runtime: ownership.runtime, project: ownership.project },
    largest: largest.sort(bySizeThenPath).slice(0, options.top),
    shadowed: { files: shadowedFiles, bytes: shadowedBytes, largest: shadowed.sort(bySizeThenPath).slice(0, options.top) },
    ...(trimmed.trimmed ? { trimmed: trimmed.trimmed } : {}),
    warnings: trimmed.warning ? [trimmed.warning] : [],
  };
}

/** An owner for people: `debian libc6 2.41-12`, `python pydantic-core 2.33.2`, `unowned`. */
export function describeOwner(owner: Owner): string {
  if (owner.kind === 'unowned') return 'unowned';
  return [owner.kind, owner.name, owner.version].filter(Boolean).join(' ');
}

/** A long text (a history entry) cut to `length` characters for a line of a report. */
export function clip(text: string, length: number): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > length ? `${line.slice(0, length - 3)}...` : line;
}

function shortDigest(digest: Digest): string {
  return digest.slice('sha256:'.length, 'sha256:'.length + 12);
}

const ownerKinds: Owner['kind'][] = ['runtime', 'debian', 'python', 'project', 'unowned'];

/** The report for people. */
export function formatInspect(report: InspectReport): string {
  const { image } = report;
  const lines: string[] = [];
  lines.push(`${image.name}  ${image.platform}${image.manifestDigest ? `  ${image.manifestDigest}` : ''}`);
  lines.push(
    `${report.layers.length} layers, ${formatBytes(image.compressedSize)} ${report.layers.every((layer) => layer.compression === 'none') ? 'stored uncompressed' : 'compressed'}, ${formatBytes(image.uncompressedSize)} uncompressed; ` +
      `${image.files} files, ${formatBytes(image.bytes)} as it runs`,
  );
  const { runtime, project, debian, python } = report.components;
  const parts = [
    runtime && `runtime ${runtime.kind === 'debian' ? "Debian's CPython" : 'python-build-standalone'} ${runtime.version ?? '?'}${runtime.release ? ` (${runtime.release})` : ''}`,
    `${debian.length} Debian packages`,
    `${python.filter((dist) => !dist.project).length} Python distributions`,
    project && `project ${project.name}${project.version ? ` ${project.version}` : ''}`,
  ].filter(Boolean);
  lines.push(parts.join(', '));
  for (const layer of report.layers) {
    lines.push('');
    const stored = layer.compression === 'none' ? `${formatBytes(layer.compressedSize)} stored uncompressed` : `${formatBytes(layer.compressedSize)} ${layer.compression}`;
    lines.push(
      `layer ${layer.number}  ${shortDigest(layer.digest)}  ${stored}, ${formatBytes(layer.uncompressedSize)} uncompressed, ${layer.files} files` +
        (layer.shadowed.files ? ` (${layer.shadowed.files} shadowed, ${formatBytes(layer.shadowed.bytes)})` : ''),
    );
    if (layer.createdBy) lines.push(`  ${clip(layer.createdBy, 110)}`);
    for (const kind of ownerKinds) {
      const owners = layer.owners.filter((owner) => owner.kind === kind);
      if (owners.length === 0) continue;
      const total = owners.reduce((sum, owner) => sum + owner.bytes, 0);
      const count = owners.reduce((sum, owner) => sum + owner.files, 0);
      const named = kind === 'unowned' ? '' : `: ${owners.slice(0, 5).map((owner) => `${owner.name} ${formatBytes(owner.bytes)}`).join(', ')}${owners.length > 5 ? `, ${owners.length - 5} more` : ''}`;
      const what = kind === 'unowned' ? `${count} files` : `${owners.length} ${owners.length === 1 ? 'owner' : 'owners'}, ${count} files`;
      lines.push(`  ${kind.padEnd(8)} ${formatBytes(total).padStart(10)}  ${what}${named}`);
    }
  }
  lines.push('', `largest files:`);
  for (const row of report.largest) lines.push(`  ${formatBytes(row.size).padStart(10)}  ${row.path}  (layer ${row.layer}, ${describeOwner(row.owner)})`);
  lines.push('', `shadowed by a later layer: ${report.shadowed.files} files, ${formatBytes(report.shadowed.bytes)}`);
  for (const row of report.shadowed.largest.filter((entry) => entry.size > 0)) {
    lines.push(`  ${formatBytes(row.size).padStart(10)}  ${row.path}  (layer ${row.layer}, ${row.state} by layer ${row.by})`);
  }
  if (report.trimmed) {
    const files = report.trimmed.reduce((sum, group) => sum + group.files, 0);
    const bytes = report.trimmed.reduce((sum, group) => sum + group.bytes, 0);
    lines.push('', `trimmed from the runtime: ${files} files, ${formatBytes(bytes)}`);
    for (const group of report.trimmed) lines.push(`  ${formatBytes(group.bytes).padStart(10)}  ${group.rule} (${group.files} files)`);
  }
  return lines.join('\n');
}
