/**
 * `uvimage diff A B`: what changed between two images, for a review (a dependency bump, a
 * Debian update, a new Python): the components added, removed or changed in version (Debian
 * packages, Python distributions, the runtime, the project); the size of each layer, paired by
 * position, and of each owner in the image as it runs; and the files added, removed or changed
 * (by type, size, content digest or link target) in the image as it runs. Pure: it compares two
 * analyses (read with `hash`, so every file has its sha256).
 */
import { formatBytes } from '../progress.js';
import type { Digest } from '../oci/digest.js';
import { clip, describeOwner, inspectReport, type ImageAnalysis, type InspectReport } from './inspect.js';
import { ownerKey, type Owner } from './owners.js';

export interface ComponentChange {
  kind: 'debian' | 'python' | 'runtime' | 'project';
  name: string;
  change: 'added' | 'removed' | 'changed';
  before?: string;
  after?: string;
}

export interface LayerSide {
  digest: Digest;
  compressedSize: number;
  uncompressedSize: number;
  createdBy?: string;
}

export interface LayerChange {
  /** 1-based position. */
  number: number;
  before?: LayerSide;
  after?: LayerSide;
  /** The same blob on both sides. */
  same: boolean;
  compressedDelta: number;
  uncompressedDelta: number;
}

export interface OwnerChange extends Omit<Owner, 'version'> {
  beforeVersion?: string;
  afterVersion?: string;
  before: number;
  after: number;
  delta: number;
}

export interface FileSide {
  type: string;
  size: number;
  sha256?: Digest;
  linkTarget?: string;
}

export interface FileChange {
  path: string;
  change: 'added' | 'removed' | 'changed';
  before?: FileSide;
  after?: FileSide;
  delta: number;
}

export interface ImageSummary {
  name: string;
  platform: string;
  manifestDigest?: Digest;
  compressedSize: number;
  uncompressedSize: number;
  files: number;
  bytes: number;
}

export interface DiffReport {
  before: ImageSummary;
  after: ImageSummary;
  components: ComponentChange[];
  layers: LayerChange[];
  owners: OwnerChange[];
  files: { added: number; removed: number; changed: number; delta: number; changes: FileChange[] };
}

function summary(report: InspectReport): ImageSummary {
  const { name, platform, manifestDigest, compressedSize, uncompressedSize, files, bytes } = report.image;
  return { name, platform, manifestDigest, compressedSize, uncompressedSize, files, bytes };
}

const compareText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function componentVersions(report: InspectReport): Map<string, { kind: ComponentChange['kind']; name: string; version: string }> {
  const out = new Map<string, { kind: ComponentChange['kind']; name: string; version: string }>();
  const add = (kind: ComponentChange['kind'], name: string, version: string) => {
    const key = `${kind}:${name}`;
    const known = out.get(key);
    // A name installed twice (two architectures, two site directories) shows all its versions.
    if (known && !known.version.split(', ').includes(version)) known.version = [...known.version.split(', '), version].sort().join(', ');
    else if (!known) out.set(key, { kind, name, version });
  };
  const { debian, python, runtime, project } = report.components;
  for (const pkg of debian) add('debian', pkg.name, pkg.version);
  for (const dist of python) if (!dist.project) add('python', dist.name, dist.version);
  if (runtime) add('runtime', runtime.kind, [runtime.version ?? '', runtime.release].filter(Boolean).join('+'));
  if (project) add('project', project.name, project.version ?? '');
  return out;
}

function visibleFiles(analysis: ImageAnalysis): Map<string, FileSide> {
  const out = new Map<string, FileSide>();
  for (const [path, { layer, entry }] of analysis.merged.visible) {
    const found = analysis.layers[layer]!.contents.entries[entry]!;
    if (found.type === 'directory') continue;
    const side: FileSide = { type: found.type, size: found.size };
    if (found.sha256) side.sha256 = found.sha256;
    if (found.linkTarget !== undefined) side.linkTarget = found.linkTarget;
    out.set(`/${path}`, side);
  }
  return out;
}

function layerSide(layer: InspectReport['layers'][number] | undefined): LayerSide | undefined {
  return layer && { digest: layer.digest, compressedSize: layer.compressedSize, uncompressedSize: layer.uncompressedSize, createdBy: layer.createdBy };
}

export function diffImages(before: ImageAnalysis, after: ImageAnalysis): DiffReport {
  const a = inspectReport(before, { top: 0 });
  const b = inspectReport(after, { top: 0 });

  const componentsA = componentVersions(a);
  const componentsB = componentVersions(b);
  const components: ComponentChange[] = [];
  for (const key of [...new Set([...componentsA.keys(), ...componentsB.keys()])].sort(compareText)) {
    const old = componentsA.get(key);
    const now = componentsB.get(key);
    if (old && now && old.version === now.version) continue;
    const { kind, name } = (now ?? old)!;
    components.push({ kind, name, change: !old ? 'added' : !now ? 'removed' : 'changed', ...(old ? { before: old.version } : {}), ...(now ? { after: now.version } : {}) });
  }
  const kindOrder: ComponentChange['kind'][] = ['runtime', 'debian', 'python', 'project'];
  components.sort((x, y) => kindOrder.indexOf(x.kind) - kindOrder.indexOf(y.kind) || compareText(x.name, y.name));

  const layers: LayerChange[] = [];
  for (let index = 0; index < Math.max(a.layers.length, b.layers.length); index++) {
    const old = layerSide(a.layers[index]);
    const now = layerSide(b.layers[index]);
    layers.push({
      number: index + 1,
      ...(old ? { before: old } : {}),
      ...(now ? { after: now } : {}),
      same: old !== undefined && now !== undefined && old.digest === now.digest,
      compressedDelta: (now?.compressedSize ?? 0) - (old?.compressedSize ?? 0),
      uncompressedDelta: (now?.uncompressedSize ?? 0) - (old?.uncompressedSize ?? 0),
    });
  }

  const ownersA = new Map(a.owners.map((owner) => [ownerKey(owner), owner]));
  const ownersB = new Map(b.owners.map((owner) => [ownerKey(owner), owner]));
  const owners: OwnerChange[] = [];
  for (const key of new Set([...ownersA.keys(), ...ownersB.keys()])) {
    const old = ownersA.get(key);
    const now = ownersB.get(key);
    const delta = (now?.bytes ?? 0) - (old?.bytes ?? 0);
    if (old && now && delta === 0 && old.version === now.version) continue;
    const { kind, name } = (now ?? old)!;
    owners.push({
      kind,
      name,
      ...(old?.version !== undefined ? { beforeVersion: old.version } : {}),
      ...(now?.version !== undefined ? { afterVersion: now.version } : {}),
      before: old?.bytes ?? 0,
      after: now?.bytes ?? 0,
      delta,
    });
  }
  owners.sort((x, y) => Math.abs(y.delta) - Math.abs(x.delta) || compareText(ownerKey(x), ownerKey(y)));

  const filesA = visibleFiles(before);
  const filesB = visibleFiles(after);
  const changes: FileChange[] = [];
  for (const path of new Set([...filesA.keys(), ...filesB.keys()])) {
    const old = filesA.get(path);
    const now = filesB.get(path);
    if (old && now) {
      const differs =
        old.type !== now.type ||
        old.size !== now.size ||
        old.linkTarget !== now.linkTarget ||
        (old.sha256 !== undefined && now.sha256 !== undefined && old.sha256 !== now.sha256);
      if (!differs) continue;
    }
    changes.push({
      path,
      change: !old ? 'added' : !now ? 'removed' : 'changed',
      ...(old ? { before: old } : {}),
      ...(now ? { after: now } : {}),
      delta: (now?.size ?? 0) - (old?.size ?? 0),
    });
  }
  changes.sort((x, y) => Math.abs(y.delta) - Math.abs(x.delta) || compareText(x.path, y.path));
  const count = (change: FileChange['change']) => changes.filter((entry) => entry.change === change).length;

  return {
    before: summary(a),
    after: summary(b),
    components,
    layers,
    owners,
    files: { added: count('added'), removed: count('removed'), changed: count('changed'), delta: changes.reduce((sum, entry) => sum + entry.delta, 0), changes },
  };
}

/** A byte difference with its sign: `+12.0 KiB`, `-3 B`, `±0 B`. */
export function formatDelta(bytes: number): string {
  if (bytes === 0) return '±0 B';
  return `${bytes > 0 ? '+' : '-'}${formatBytes(Math.abs(bytes))}`;
}

function describeComponent(change: ComponentChange): string {
  if (change.change === 'added') return `${change.name} ${change.after}`;
  if (change.change === 'removed') return `${change.name} ${change.before}`;
  return `${change.name} ${change.before} → ${change.after}`;
}

function describeLayer(layer: LayerChange): string {
  if (!layer.before) return `added, ${formatBytes(layer.after!.compressedSize)}`;
  if (!layer.after) return `removed, ${formatBytes(layer.before.compressedSize)}`;
  if (layer.same) return `same, ${formatBytes(layer.after.compressedSize)}`;
  return `changed, ${formatBytes(layer.before.compressedSize)} → ${formatBytes(layer.after.compressedSize)} (${formatDelta(layer.compressedDelta)} compressed, ${formatDelta(layer.uncompressedDelta)} uncompressed)`;
}

function ownerName(change: OwnerChange): string {
  const versions = change.beforeVersion !== change.afterVersion && change.beforeVersion && change.afterVersion ? ` ${change.beforeVersion} → ${change.afterVersion}` : '';
  return `${describeOwner({ kind: change.kind, name: change.name })}${versions}`;
}

const marks = { added: '+', removed: '-', changed: '~' } as const;

/** The report for people. */
export function formatDiff(report: DiffReport, top: number): string {
  const { before, after } = report;
  const lines = [
    `${before.name} → ${after.name}`,
    `  compressed ${formatBytes(before.compressedSize)} → ${formatBytes(after.compressedSize)} (${formatDelta(after.compressedSize - before.compressedSize)}), ` +
      `uncompressed ${formatBytes(before.uncompressedSize)} → ${formatBytes(after.uncompressedSize)} (${formatDelta(after.uncompressedSize - before.uncompressedSize)})`,
    '',
    report.components.length ? 'components:' : 'components: no change',
  ];
  for (const change of report.components) lines.push(`  ${marks[change.change]} ${change.kind.padEnd(8)} ${describeComponent(change)}`);
  lines.push('', 'layers:');
  for (const layer of report.layers) lines.push(`  ${String(layer.number).padStart(2)}  ${describeLayer(layer)}  ${clip((layer.after ?? layer.before)!.createdBy ?? '', 90)}`.trimEnd());
  lines.push('', report.owners.length ? 'owners (bytes in the image as it runs):' : 'owners: no change');
  for (const change of report.owners.slice(0, top)) lines.push(`  ${formatDelta(change.delta).padStart(11)}  ${ownerName(change)}`);
  if (report.owners.length > top) lines.push(`  … ${report.owners.length - top} more`);
  const { files } = report;
  lines.push('', `files: ${files.added} added, ${files.removed} removed, ${files.changed} changed (${formatDelta(files.delta)})`);
  for (const change of files.changes.slice(0, top)) lines.push(`  ${marks[change.change]} ${formatDelta(change.delta).padStart(11)}  ${change.path}`);
  if (files.changes.length > top) lines.push(`  … ${files.changes.length - top} more`);
  return lines.join('\n');
}

function cellText(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** The report as a pull-request comment (GitHub-flavoured Markdown). */
export function formatDiffMarkdown(report: DiffReport, top: number): string {
  const { before, after } = report;
  const lines = [
    `### Image diff: \`${cellText(before.name)}\` → \`${cellText(after.name)}\``,
    '',
    '| | before | after | change |',
    '| --- | ---: | ---: | ---: |',
    `| compressed | ${formatBytes(before.compressedSize)} | ${formatBytes(after.compressedSize)} | ${formatDelta(after.compressedSize - before.compressedSize)} |`,
    `| uncompressed | ${formatBytes(before.uncompressedSize)} | ${formatBytes(after.uncompressedSize)} | ${formatDelta(after.uncompressedSize - before.uncompressedSize)} |`,
    `| files | ${before.files} | ${after.files} | ${after.files - before.files >= 0 ? '+' : ''}${after.files - before.files} |`,
    '',
    '#### Components',
    '',
  ];
  if (report.components.length === 0) lines.push('No component added, removed or changed.');
  else {
    lines.push('| | kind | name | before | after |', '| --- | --- | --- | --- | --- |');
    for (const change of report.components) {
      lines.push(`| ${change.change} | ${change.kind} | ${cellText(change.name)} | ${cellText(change.before ?? '')} | ${cellText(change.after ?? '')} |`);
    }
  }
  lines.push('', '#### Layers', '', '| # | | compressed | change | created by |', '| ---: | --- | ---: | ---: | --- |');
  for (const layer of report.layers) {
    const state = !layer.before ? 'added' : !layer.after ? 'removed' : layer.same ? 'same' : 'changed';
    const size = layer.after ? formatBytes(layer.after.compressedSize) : '';
    const createdBy = cellText(clip((layer.after ?? layer.before)!.createdBy ?? '', 100));
    lines.push(`| ${layer.number} | ${state} | ${size} | ${layer.same ? '' : formatDelta(layer.compressedDelta)} | ${createdBy} |`);
  }
  lines.push('', '#### Size by owner', '');
  if (report.owners.length === 0) lines.push('No owner changed size.');
  else {
    lines.push('| owner | before | after | change |', '| --- | ---: | ---: | ---: |');
    for (const change of report.owners.slice(0, top)) lines.push(`| ${cellText(ownerName(change))} | ${formatBytes(change.before)} | ${formatBytes(change.after)} | ${formatDelta(change.delta)} |`);
    if (report.owners.length > top) lines.push('', `… and ${report.owners.length - top} more.`);
  }
  const { files } = report;
  lines.push('', `<details><summary>Files: ${files.added} added, ${files.removed} removed, ${files.changed} changed (${formatDelta(files.delta)})</summary>`, '');
  if (files.changes.length) {
    lines.push('| | path | change |', '| --- | --- | ---: |');
    for (const change of files.changes.slice(0, top)) lines.push(`| ${change.change} | \`${cellText(change.path)}\` | ${formatDelta(change.delta)} |`);
    if (files.changes.length > top) lines.push('', `… and ${files.changes.length - top} more.`);
  }
  lines.push('', '</details>');
  return lines.join('\n');
}
