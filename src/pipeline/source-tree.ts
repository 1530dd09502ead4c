/**
 * The source tree of an app that runs from it: a project uv does not install as a package
 * (`[tool.uv] package = false`, a virtual project, or a build that installs none of its modules,
 * like setuptools with `packages = []`) is copied into the working directory as a layer of its own
 * after the venv, so `python manage.py …`, `gunicorn pkg.wsgi`, `python -m pkg` and
 * `flask --app pkg` work from there. `source = true | false` in [tool.uvimage] overrides the
 * default for any project; `source-include` / `source-exclude` steer what goes in.
 *
 * What is copied follows the project's .dockerignore when it has one (Docker's rules, as
 * `docker build` reads it), else leaves out what an image never wants (.git, virtualenvs, bytecode
 * caches, node_modules, build outputs) and what .gitignore files ignore. The image's own venv path
 * is never copied over.
 */
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import dockerignoreModule from '@balena/dockerignore';
import ignore, { type Ignore } from 'ignore';
import type { ToolUvimage } from '../config/schema.js';
import { directoryEntries } from '../oci/directory-entries.js';
import type { LayerEntry } from '../oci/layer-entry.js';
import { isPackage, type PyProject } from '../python/pyproject.js';

// The package is CommonJS (module.exports = the factory) with an `export default` in its types:
// imported from ESM, the default is module.exports itself, which those types call `.default`.
const dockerignore = dockerignoreModule as unknown as typeof dockerignoreModule.default;

/** What the image never wants from a source tree, unless a .dockerignore says otherwise (gitignore syntax). */
export const defaultSourceExcludes = [
  '.git/',
  '.hg/',
  '.svn/',
  '.venv/',
  'venv/',
  '__pycache__/',
  '*.py[cod]',
  'node_modules/',
  'build/',
  'dist/',
  '*.egg-info/',
  '.eggs/',
  '.tox/',
  '.nox/',
  '.pytest_cache/',
  '.mypy_cache/',
  '.ruff_cache/',
  '.coverage',
  '.DS_Store',
];

export interface SourceTreePlan {
  /** The project directory copied. */
  dir: string;
  /** Where it goes in the image (the working directory). */
  dest: string;
  /** Why it is in the image. */
  why: string;
  /** Which rules chose the files: the project's .dockerignore, or the defaults with .gitignore files. */
  rules: '.dockerignore' | 'defaults and .gitignore';
  include?: string[];
  exclude?: string[];
  /** What it holds, counted when planned. */
  files: number;
  bytes: number;
}

/**
 * Why a project's source tree goes into the image, or undefined when it does not: `source` in
 * [tool.uvimage] decides when given; else uv installing none of the project's modules does.
 */
export function sourceTreeReason(project: PyProject, config: ToolUvimage, origin?: string): string | undefined {
  if (config.source === false) return undefined;
  if (config.source === true) return origin ?? 'tool.uvimage.source';
  if (project.toolUv.package === false) return 'tool.uv.package = false: uv does not install the project';
  if (!isPackage(project)) return 'the project has no build system: uv does not install it';
  const setuptools = (project.raw.tool as { setuptools?: Record<string, unknown> } | undefined)?.setuptools;
  const packages = setuptools?.packages;
  const modules = setuptools?.['py-modules'];
  if (Array.isArray(packages) && packages.length === 0 && (!Array.isArray(modules) || modules.length === 0)) {
    return 'tool.setuptools packages = []: the build installs none of its modules';
  }
  return undefined;
}

/** A predicate over paths relative to the tree (directories with a trailing slash): whether the path goes in. */
type Keep = (path: string, isDirectory: boolean) => boolean;

async function readText(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch(() => undefined);
}

/** The selection rules of a tree, as a predicate; nested .gitignore files are read as the walk enters their directory. */
async function selection(dir: string, config: ToolUvimage, venvInTree: string | undefined): Promise<{ rules: SourceTreePlan['rules']; keep: Keep; enter: (relative: string) => Promise<void> }> {
  const include = config['source-include']?.length ? ignore().add(config['source-include']) : undefined;
  const exclude = ignore().add(config['source-exclude'] ?? []);
  const dockerIgnoreText = await readText(join(dir, '.dockerignore'));
  const docker = dockerIgnoreText !== undefined ? dockerignore({ ignorecase: false }).add(dockerIgnoreText.split('\n')) : undefined;
  const defaults = ignore().add(defaultSourceExcludes);
  /** .gitignore rules by the directory they were found in ('' for the root). */
  const gitignores = new Map<string, Ignore>();

  const keep: Keep = (path, isDirectory) => {
    const probe = isDirectory ? `${path}/` : path;
    if (venvInTree && (path === venvInTree || path.startsWith(`${venvInTree}/`))) return false;
    if (exclude.ignores(probe)) return false;
    if (docker) {
      if (docker.ignores(path)) return false;
    } else {
      if (defaults.ignores(probe)) return false;
      for (const [base, rules] of gitignores) {
        if (base !== '' && !path.startsWith(`${base}/`)) continue;
        const inBase = base === '' ? probe : probe.slice(base.length + 1);
        if (inBase && rules.ignores(inBase)) return false;
      }
    }
    // An include list keeps the files it names and the directories on the way to them.
    if (include && !isDirectory && !include.ignores(path)) return false;
    return true;
  };
  const enter = async (relative: string): Promise<void> => {
    if (docker) return;
    const text = await readText(join(dir, relative, '.gitignore'));
    if (text !== undefined) gitignores.set(relative, ignore().add(text));
  };
  return { rules: docker ? '.dockerignore' : 'defaults and .gitignore', keep, enter };
}

/** The layer entries of a planned source tree, placed at its destination. */
export async function sourceTreeEntries(plan: Pick<SourceTreePlan, 'dir' | 'dest' | 'include' | 'exclude'>, venvRoot: string): Promise<{ entries: LayerEntry[]; rules: SourceTreePlan['rules'] }> {
  const dest = plan.dest.replace(/^\/+|\/+$/g, '');
  const venv = venvRoot.replace(/^\/+/, '');
  const venvInTree = venv.startsWith(`${dest}/`) ? venv.slice(dest.length + 1) : undefined;
  const { rules, keep, enter } = await selection(plan.dir, { 'source-include': plan.include, 'source-exclude': plan.exclude }, venvInTree);
  const entries = await directoryEntries(plan.dir, { prefix: dest, keep, enter });
  // Directories left empty by the selection (an include list, say) are not worth a tar header.
  const used = new Set<string>();
  for (const entry of entries) {
    if (entry.type === 'directory') continue;
    for (let parent = posix.dirname(entry.path); parent !== '.' && parent !== dest && !used.has(parent); parent = posix.dirname(parent)) used.add(parent);
  }
  return { entries: entries.filter((entry) => entry.type !== 'directory' || entry.path === dest || used.has(entry.path)), rules };
}

/** Plans the source-tree layer: why, from where, to where, and what it holds. */
export async function planSourceTree(project: PyProject, config: ToolUvimage, options: { workdir: string; venvRoot: string; origin?: string }): Promise<SourceTreePlan | undefined> {
  const why = sourceTreeReason(project, config, options.origin);
  if (!why) return undefined;
  const plan = { dir: project.dir, dest: options.workdir, include: config['source-include'], exclude: config['source-exclude'] };
  const { entries, rules } = await sourceTreeEntries(plan, options.venvRoot);
  const files = entries.filter((entry) => entry.type === 'file');
  return { ...plan, why, rules, files: files.length, bytes: files.reduce((sum, entry) => sum + (entry.type === 'file' ? entry.size : 0), 0) };
}
