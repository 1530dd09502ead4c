/**
 * A project directory with its uv.lock, as every command that installs it needs them: the project
 * (possibly a member of a workspace whose root holds the lock), the workspace, the lock, and which
 * of the workspace's packages to install — `--package` / `--all-packages` meaning what they mean to
 * `uv sync`. Whether the lock is fresh is uv's to say (src/python/lock-check.ts).
 */
import { stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { UserError } from '../errors.js';
import { readUvLock, type UvLock } from './lock.js';
import { normalizeName } from './markers.js';
import { findWorkspaceRoot, readPyProject, readWorkspaceMembers, type PyProject } from './pyproject.js';

export interface LockedProject {
  /** The project installed: the directory given, or the one member --package names. */
  project: PyProject;
  /** The workspace root (the project itself when it is not a member). */
  root: PyProject;
  /** Workspace members other than the root. */
  members: PyProject[];
  lock: UvLock;
  /** The workspace packages to install when not just `project`: several --package, or every member (--all-packages). */
  packages?: string[];
  allPackages?: boolean;
}

export interface PackageSelection {
  /** `--package NAME`: workspace members to install (with what they depend on). */
  packages?: string[];
  /** `--all-packages`: every workspace member. */
  allPackages?: boolean;
  /** Where the selection was given, for messages (`--package`, `tool.uvimage.package`). */
  from?: string;
}

export async function loadLockedProject(directory: string, selection: PackageSelection = {}): Promise<LockedProject> {
  const dir = resolve(directory);
  const isDir = await stat(dir).then((s) => s.isDirectory(), () => false);
  if (!isDir) throw new UserError(`${directory}: not a directory`);
  const given = await readPyProject(dir);
  const root = (await findWorkspaceRoot(given)) ?? given;
  const members = await readWorkspaceMembers(root);
  const lock = await readUvLock(join(root.dir, 'uv.lock'));
  const everyone = [root, ...members].filter((project) => project.hasProjectTable);
  const list = () => everyone.map((project) => project.name).join(', ') || 'none';

  if (selection.allPackages) return { project: given.hasProjectTable ? given : root, root, members, lock, allPackages: true };
  if (selection.packages?.length) {
    const chosen = selection.packages.map((name) => {
      const found = everyone.find((project) => normalizeName(project.name) === normalizeName(name));
      if (!found) throw new UserError(`${selection.from ?? '--package'}: ${name} is not a package of the workspace at ${root.dir} (its packages: ${list()})`);
      return found;
    });
    if (chosen.length === 1) return { project: chosen[0]!, root, members, lock };
    return { project: chosen[0]!, root, members, lock, packages: chosen.map((project) => project.name) };
  }
  if (!given.hasProjectTable) {
    const names = members.map((member) => `${member.name} (${relative(root.dir, member.dir)})`).join(', ');
    throw new UserError(`${join(dir, 'pyproject.toml')} is a workspace root with no [project]: choose what to build with --package NAME (its members: ${names || 'none'}) or --all-packages`);
  }
  return { project: given, root, members, lock };
}
