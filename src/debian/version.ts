/**
 * Debian version ordering, exactly as dpkg compares versions (lib/dpkg/version.c): an epoch
 * compared as a number, then the upstream version and the Debian revision compared by
 * verrevcmp, where '~' sorts before everything (even the end of the string), letters before
 * other characters, and runs of digits compare as numbers.
 */

export interface DebianVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

export function parseDebianVersion(version: string): DebianVersion {
  const text = version.trim();
  const colon = text.indexOf(':');
  let epoch = 0;
  let rest = text;
  if (colon >= 0) {
    const epochText = text.slice(0, colon);
    if (!/^\d+$/.test(epochText)) throw new Error(`not a Debian version (bad epoch): ${JSON.stringify(version)}`);
    epoch = Number(epochText);
    rest = text.slice(colon + 1);
  }
  const dash = rest.lastIndexOf('-');
  if (dash >= 0) return { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) };
  return { epoch, upstream: rest, revision: '' };
}

/** Negative when a < b, zero when they are equal, positive when a > b. */
export function compareDebianVersions(a: string, b: string): number {
  const va = parseDebianVersion(a);
  const vb = parseDebianVersion(b);
  if (va.epoch !== vb.epoch) return va.epoch < vb.epoch ? -1 : 1;
  const upstream = verrevcmp(va.upstream, vb.upstream);
  if (upstream !== 0) return upstream;
  return verrevcmp(va.revision, vb.revision);
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function isLetter(code: number): boolean {
  return (code >= 65 && code <= 90) || (code >= 97 && code <= 122);
}

/** dpkg's order(): the weight of one character of a non-digit run; 0 is the end of the string. */
function order(code: number): number {
  if (Number.isNaN(code)) return 0; // past the end
  if (isDigit(code)) return 0;
  if (isLetter(code)) return code;
  if (code === 126 /* ~ */) return -1;
  return code + 256;
}

function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(a.charCodeAt(i))) || (j < b.length && !isDigit(b.charCodeAt(j)))) {
      const ac = order(a.charCodeAt(i));
      const bc = order(b.charCodeAt(j));
      if (ac !== bc) return Math.sign(ac - bc);
      i++;
      j++;
    }
    while (a.charCodeAt(i) === 48) i++;
    while (b.charCodeAt(j) === 48) j++;
    while (isDigit(a.charCodeAt(i)) && isDigit(b.charCodeAt(j))) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a.charCodeAt(i))) return 1;
    if (isDigit(b.charCodeAt(j))) return -1;
    if (firstDiff) return Math.sign(firstDiff);
  }
  return 0;
}

export type VersionRelation = '<<' | '<=' | '=' | '>=' | '>>';

/** Whether `version` satisfies `relation constraint`, e.g. ('1.2-1', '>=', '1.0'). */
export function versionSatisfies(version: string, relation: VersionRelation, constraint: string): boolean {
  const c = compareDebianVersions(version, constraint);
  switch (relation) {
    case '<<':
      return c < 0;
    case '<=':
      return c <= 0;
    case '=':
      return c === 0;
    case '>=':
      return c >= 0;
    case '>>':
      return c > 0;
  }
}
