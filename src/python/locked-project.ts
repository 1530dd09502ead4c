/**
 * A project directory with its uv.lock, as every command that installs it needs them: the project
 * (possibly a member of a workspace whose root holds the lock), the workspace, the lock, checked
 * fresh like `uv sync --locked` unless `frozen`.
 */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { UserError } from '../errors.js';
import { checkLockFresh, readUvLock, type UvLock } from './lock.js';
import { findWorkspaceRoot, readPyProject, readWorkspaceMembers, type PyProject } from './pyproject.js';

export interface LockedProject {
  /** The project asked for (a workspace member or the root). */
  project: PyProject;
  /** The workspace root (the project itself when it is not a member). */
  root: PyProject;
  /** Workspace members other than the root. */
  members: PyProject[];
  lock: UvLock;
}

export async function loadLockedProject(directory: string, options: { frozen?: boolean } = {}): Promise<LockedProject> {
  const dir = resolve(directory);
  const isDir = await stat(dir).then((s) => s.isDirectory(), () => false);
  if (!isDir) throw new UserError(`${directory}: not a directory`);
  const project = await readPyProject(dir);
  const root = (await findWorkspaceRoot(project)) ?? project;
  const members = await readWorkspaceMembers(root);
  const lock = await readUvLock(join(root.dir, 'uv.lock'));
  if (!options.frozen) checkLockFresh(root, lock, members);
  return { project, root, members, lock };
}
