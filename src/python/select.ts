/** Choosing the one wheel of a locked package that the target installs, as uv does: the best tag priority wins. */
import type { LockWheel } from './lock.js';
import { parseWheelFilename, wheelTags } from './tags.js';

/** Index of each tag in a priority list (lower is better). */
export function tagPriorities(tags: string[]): Map<string, number> {
  const priorities = new Map<string, number>();
  tags.forEach((tag, index) => {
    if (!priorities.has(tag)) priorities.set(tag, index);
  });
  return priorities;
}

/** The best priority (lower is better) of a wheel for the tags, or undefined when it is incompatible. */
export function wheelPriority(filename: string, priorities: Map<string, number>): number | undefined {
  let best: number | undefined;
  for (const tag of wheelTags(filename)) {
    const priority = priorities.get(tag);
    if (priority !== undefined && (best === undefined || priority < best)) best = priority;
  }
  return best;
}

/** PEP 427 build tags sort by their leading number, then the rest as a string; no build tag sorts first. */
function compareBuildTags(a: string | undefined, b: string | undefined): number {
  if (a === b) return 0;
  if (a === undefined) return -1;
  if (b === undefined) return 1;
  const [, an = '0', ar = ''] = /^(\d*)(.*)$/.exec(a)!;
  const [, bn = '0', br = ''] = /^(\d*)(.*)$/.exec(b)!;
  const byNumber = Number(an || 0) - Number(bn || 0);
  if (byNumber !== 0) return Math.sign(byNumber);
  return ar < br ? -1 : ar > br ? 1 : 0;
}

/**
 * The compatible wheel with the best tag priority (`tags` from compatibleTags, best first); on a
 * tie the higher build tag wins, as in uv, then the lock's order. undefined when no wheel fits.
 */
export function selectWheel(wheels: LockWheel[], tags: string[] | Map<string, number>): LockWheel | undefined {
  const priorities = tags instanceof Map ? tags : tagPriorities(tags);
  let best: { wheel: LockWheel; priority: number; build?: string } | undefined;
  for (const wheel of wheels) {
    const priority = wheelPriority(wheel.filename, priorities);
    if (priority === undefined) continue;
    const build = parseWheelFilename(wheel.filename)?.build;
    if (best === undefined || priority < best.priority || (priority === best.priority && compareBuildTags(build, best.build) > 0)) {
      best = { wheel, priority, build };
    }
  }
  return best?.wheel;
}
