/**
 * The closure check (issue 12): every ELF file of a platform image — base, runtime, venv, source
 * tree — has each DT_NEEDED (and its program interpreter) resolved inside the image, by the
 * dynamic loader's rules (src/binary/loader.ts), transitively. It runs on the layers as built,
 * before any output is written; it runs nothing, and works the same for every architecture.
 *
 * What it needs of a layer (its paths, symlinks, whiteouts, the ELF facts of its ELF files, the
 * small text files that say who owns what) is read once per layer, by streaming the layer into a
 * spool and reading each ELF file's headers from there, and kept in the store (record
 * `layer-files`, by diff_id): an unchanged layer is not read again.
 *
 * A miss names, per soname, the files that need it (the Python distribution or Debian package
 * owning each, the chain that loads it) and the Debian packages of the base's suite that ship it,
 * read from the suite's Contents index (verified through the signed InRelease like Packages).
 */
import { posix } from 'node:path';
import { findMissingLibraries, ImageTree, loaderSystem, shownPath, type MissingLibrary } from '../binary/loader.js';
import { debianSourceFrom, fetchIndexFile } from '../debian/archive/index.js';
import { findInContents, packagesInSearchPath } from '../debian/contents.js';
import { mergeUsrPath } from '../debian/deb.js';
import { UserError, describeError } from '../errors.js';
import { architectures, type Architecture } from '../facts/architectures.js';
import { debianSuites, type DebianSuite } from '../facts/debian-suites.js';
import type { Layer } from '../oci/image.js';
import { addLayerMember, emptyLayerFiles, layerFilesFormat, layerFilesKey, wantsContent, type LayerFiles } from '../oci/layer-files.js';
import type { BlobSource } from '../oci/sink.js';
import { spoolTar } from '../oci/spooled-tar.js';
import type { BlobStore } from '../oci/store.js';
import { verifiedTar } from '../report/image-source.js';
import { asTask, stages, type Progress, type Stage } from '../progress.js';

/**
 * A layer's files: the record the layer writer made when uvimage wrote the layer, else read from
 * its blob once (streamed into a spool, each ELF file's headers read from there) and kept.
 */
export async function layerFiles(layer: Layer, blobs: BlobSource, store: BlobStore, stage?: Stage): Promise<LayerFiles> {
  return store.cached(
    'layer-files',
    layerFilesKey(layer.diffId),
    () => asTask(stage, layer.descriptor.digest.slice(7, 19), async (task) => {
      const what = `layer ${layer.descriptor.digest}`;
      const tar = verifiedTar(() => blobs.openLayer(layer), { mediaType: layer.descriptor.mediaType, digest: layer.descriptor.digest, size: layer.descriptor.size, diffId: layer.diffId }, what);
      const spool = await spoolTar(tar, { spoolPath: store.tempPath('closure'), label: what });
      try {
        const files = emptyLayerFiles();
        for (const member of spool.members) {
          const content = wantsContent(member) ? { all: () => spool.readFile(member), range: (position: number, length: number) => spool.readRange(member, position, length) } : undefined;
          await addLayerMember(files, member, content);
        }
        return files;
      } finally {
        await spool.close();
        task.advance(layer.descriptor.size);
      }
    }),
    { valid: (record) => (record as LayerFiles).format === layerFilesFormat },
  );
}

/** The image as one tree, layer over layer, whiteouts applied. */
export function imageTree(layers: LayerFiles[]): { tree: ImageTree; texts: Map<string, string> } {
  const tree = new ImageTree();
  const texts = new Map<string, string>();
  for (const layer of layers) {
    for (const path of layer.opaque) for (const name of [...tree.children(`/${path}`)]) tree.remove(`/${path}/${name}`);
    for (const path of layer.whiteouts) {
      tree.remove(`/${path}`);
      texts.delete(path);
    }
    for (const [path, type, target] of layer.entries) {
      const text = layer.texts[path];
      if (type === 'l') tree.add(`/${path}`, { type: 'symlink', target: target! });
      else if (type === 'd') tree.add(`/${path}`, { type: 'directory' });
      else tree.add(`/${path}`, { type: 'file', elf: layer.elf[path] }, text);
      if (text !== undefined) texts.set(path, text);
      else texts.delete(path);
    }
  }
  return { tree, texts };
}

/** Who owns each file, from the image's own records: Debian's status.d md5sums and the dist-infos' RECORD files. */
export function owners(texts: Map<string, string>): (path: string) => string | undefined {
  const byPath = new Map<string, string>();
  for (const [path, text] of texts) {
    const debian = /^var\/lib\/dpkg\/status\.d\/([^/]+)\.md5sums$/.exec(path);
    if (debian) {
      for (const line of text.split('\n')) {
        const file = line.slice(34).trim();
        if (!file) continue;
        const path = file.replace(/^\.?\//, '');
        byPath.set(path, `Debian ${debian[1]}`);
        // On a merged-/usr suite the .deb's lib/… is written as usr/lib/… (md5sums list regular files only).
        byPath.set(mergeUsrPath(path, false), `Debian ${debian[1]}`);
      }
      continue;
    }
    const record = /^(.*)\/([^/]+)-[^-/]+\.dist-info\/RECORD$/.exec(path);
    if (!record) continue;
    const name = record[2]!.replace(/_/g, '-').toLowerCase();
    for (const line of text.split('\n')) {
      const file = line.split(',')[0];
      if (file) byPath.set(posix.normalize(`${record[1]}/${file}`), name);
    }
  }
  return (path) => {
    const relative = path.replace(/^\//, '');
    return byPath.get(relative) ?? (relative.startsWith('python/') ? 'the runtime' : undefined);
  };
}

export interface ClosureFinding {
  /** The soname (or path) the loader cannot find. */
  soname: string;
  /** Who needs it: the owner of the file, and how it is loaded (from the program or module to the file). */
  neededBy: { owner?: string; file: string; chain: string[] }[];
  /** Debian packages of the base's suite that ship it where the loader looks; undefined when that is not known. */
  packages?: string[];
}

export interface ClosureReport {
  platform: string;
  /** How many ELF files were checked. */
  elfFiles: number;
  missing: ClosureFinding[];
  /** Misses `allow-missing` accepts. */
  allowed: ClosureFinding[];
  /**
   * Standard-library extension modules of the runtime that cannot load (their library is not in
   * the image): not an error — a program that never imports them never notices — but said.
   */
  unloadableModules: ClosureFinding[];
  /** Why the Debian packages are not named, when they are not. */
  packagesUnknown?: string;
}

export interface ClosureOptions {
  arch: Architecture;
  platform: string;
  /** The Debian suite whose packages are suggested (uvimage's base, or a pulled Debian base's); none: no suggestions. */
  suite?: DebianSuite;
  mirror?: string;
  allowMissing?: string[];
  /** Python interpreters and the trees whose extension modules they load. */
  pythonInterpreters: { root: string; interpreter: string }[];
  /** The runtime's standard-library extension modules (lib-dynload): what only they need is reported, not refused. */
  stdlibModules: RegExp;
  workdir: string;
  store: BlobStore;
  blobs: BlobSource;
  env?: NodeJS.ProcessEnv;
  progress?: Progress;
}

/** Checks one platform image's layers; the report lists what is missing (and what allow-missing let through). */
export async function checkClosure(layers: Layer[], options: ClosureOptions): Promise<ClosureReport> {
  // The layers are read side by side: each is a stream of inflate and spool work, and a machine
  // with more than one core does them at once.
  let files: LayerFiles[];
  const stage = options.progress?.stage(stages.closureLayers(options.arch));
  try {
    files = await Promise.all(layers.map((layer) => layerFiles(layer, options.blobs, options.store, stage)));
  } finally {
    stage?.finish();
  }
  const { tree, texts } = imageTree(files);
  const machine = architectures[options.arch].python;
  const report = findMissingLibraries(tree, { system: loaderSystem(machine), pythonInterpreters: options.pythonInterpreters, workdir: options.workdir });
  const ownerOf = owners(texts);
  const allowed = new Set(options.allowMissing ?? []);
  const findings = report.missing.map((miss: MissingLibrary): ClosureFinding => ({
    soname: miss.name,
    neededBy: miss.neededBy.map((needer) => ({ owner: ownerOf(needer.file), file: needer.file, chain: needer.chain })),
  }));
  const onlyStdlib = (finding: ClosureFinding) => finding.neededBy.every((needer) => options.stdlibModules.test(needer.chain[0] ?? needer.file));
  const missing = findings.filter((finding) => !allowed.has(finding.soname) && !onlyStdlib(finding));
  const result: ClosureReport = {
    platform: options.platform,
    elfFiles: [...tree.elfFiles()].length,
    missing,
    allowed: findings.filter((finding) => allowed.has(finding.soname)),
    unloadableModules: findings.filter((finding) => !allowed.has(finding.soname) && onlyStdlib(finding)),
  };
  const suite = options.suite ?? debianSuiteOf(texts);
  if (missing.length > 0 && suite) {
    try {
      const source = debianSourceFrom({ suite, arch: options.arch, mirror: options.mirror, env: options.env });
      const digest = await fetchIndexFile(source, options.store, `main/Contents-${architectures[options.arch].debian}.gz`);
      const found = await findInContents(options.store.openRead(digest), missing.map((finding) => posix.basename(finding.soname)), `Debian ${suite}'s Contents index`);
      const dirs = loaderSystem(machine).searchDirs;
      for (const finding of missing) finding.packages = packagesInSearchPath(found.get(posix.basename(finding.soname)) ?? [], dirs);
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      result.packagesUnknown = `Debian ${suite}'s Contents index could not be read (${describeError(error)})`;
    }
  } else if (missing.length > 0) {
    result.packagesUnknown = 'the base is not a Debian suite uvimage knows';
  }
  return result;
}

/** The Debian suite an image's os-release names, when it is one uvimage knows. */
function debianSuiteOf(texts: Map<string, string>): DebianSuite | undefined {
  const text = texts.get('etc/os-release') ?? texts.get('usr/lib/os-release');
  if (!text || !/^ID="?debian"?$/m.test(text)) return undefined;
  const codename = /^VERSION_CODENAME="?([a-z]+)"?$/m.exec(text)?.[1];
  return codename && codename in debianSuites ? (codename as DebianSuite) : undefined;
}

/** The error for misses: one line saying what, then a line per soname and platform, then the line to add. */
export function closureError(reports: ClosureReport[], suiteName: string | undefined): UserError {
  const lines: string[] = [];
  const packages = new Set<string>();
  const notes = new Set<string>();
  let total = 0;
  for (const report of reports) {
    if (report.packagesUnknown && report.missing.length) notes.add(report.packagesUnknown);
    for (const finding of report.missing) {
      total++;
      const [first, ...others] = finding.neededBy;
      const chain = first ? [...first.chain.slice(0, -1), first.file].map(shownPath).join(' → ') : '';
      const who = first ? `${first.owner ? `${first.owner}: ` : ''}${chain}` : '';
      const more = others.length ? ` (and ${others.length} more file${others.length === 1 ? '' : 's'})` : '';
      let ships = '';
      if (finding.packages?.length) {
        ships = ` — Debian ${suiteName ?? ''}: ${finding.packages.join(' or ')}`;
        packages.add(finding.packages[0]!);
      } else if (finding.packages) ships = ` — no package of Debian ${suiteName ?? ''} ships it where the loader looks`;
      lines.push(`  ${report.platform}: ${who} needs ${finding.soname}${more}${ships}`);
    }
  }
  if (packages.size) lines.push(`  add to [tool.uvimage]: debian-packages = [${[...packages].sort().map((name) => JSON.stringify(name)).join(', ')}]`);
  for (const note of notes) lines.push(`  (which Debian packages ship them is not known: ${note})`);
  return new UserError(
    `the image lacks ${total} shared librar${total === 1 ? 'y' : 'ies'} its ELF files need; nothing was written (debian-packages adds them to the base; allow-missing accepts one only loaded optionally):\n${lines.join('\n')}`,
  );
}
