/**
 * Debian control data (deb822): stanzas of "Field: value" lines with indented continuation
 * lines, as in InRelease, Packages and a .deb's control file; and the relationship fields
 * (Depends, Pre-Depends, Provides) parsed into alternatives of package relations.
 */
import type { VersionRelation } from './version.js';

/** One stanza's fields, names as written (Debian field names are case-insensitive; the archive writes them canonically). */
export type Stanza = Record<string, string>;

/** Parses one stanza's text. Continuation lines keep their newline, without the leading space. */
export function parseStanza(text: string): Stanza {
  const fields: Stanza = {};
  let current: string | undefined;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const first = line.charCodeAt(0);
    if (first === 32 || first === 9) {
      if (current === undefined) continue;
      fields[current] += '\n' + line.slice(1);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    current = line.slice(0, colon);
    fields[current] = line.slice(colon + 1).trim();
  }
  return fields;
}

/** Splits deb822 text into the texts of its stanzas (separated by blank lines). */
export function splitStanzas(text: string): string[] {
  return text
    .replace(/\r\n/g, '\n')
    .split(/\n[ \t]*\n/)
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

export function parseStanzas(text: string): Stanza[] {
  return splitStanzas(text).map(parseStanza);
}

/** One package relation: `name[:arch] [(op version)]`. */
export interface Relation {
  name: string;
  /** An architecture qualifier as written (`any`, `native`, `amd64`), if any. */
  archQualifier?: string;
  relation?: VersionRelation;
  version?: string;
}

/** A relationship field: a list of groups, each a list of alternatives (`a | b`). */
export type RelationGroups = Relation[][];

const relationPattern = /^([a-z0-9][a-z0-9+.\-]*)(?::([a-z0-9\-]+))?\s*(?:\(\s*(<<|<=|>=|>>|=|<|>)\s*([A-Za-z0-9][^)\s]*)\s*\))?\s*(?:\[[^\]]*\])?\s*(?:<[^>]*>\s*)*$/i;

/** Parses `Depends`-style text. Throws on a relation it cannot read (the caller names the package). */
export function parseRelations(text: string | undefined): RelationGroups {
  if (!text || !text.trim()) return [];
  const groups: RelationGroups = [];
  for (const groupText of text.replace(/\n/g, ' ').split(',')) {
    if (!groupText.trim()) continue;
    const group: Relation[] = [];
    for (const altText of groupText.split('|')) {
      const match = relationPattern.exec(altText.trim());
      if (!match) throw new Error(`cannot parse package relation ${JSON.stringify(altText.trim())}`);
      const [, name, arch, op, version] = match;
      const relation: Relation = { name: name!.toLowerCase() };
      if (arch) relation.archQualifier = arch;
      if (op && version) {
        // '<' and '>' are obsolete spellings of '<=' and '>=' (Debian Policy 7.1).
        relation.relation = op === '<' ? '<=' : op === '>' ? '>=' : (op as VersionRelation);
        relation.version = version;
      }
      group.push(relation);
    }
    groups.push(group);
  }
  return groups;
}

export function formatRelation(relation: Relation): string {
  const arch = relation.archQualifier ? `:${relation.archQualifier}` : '';
  const version = relation.relation ? ` (${relation.relation} ${relation.version})` : '';
  return `${relation.name}${arch}${version}`;
}

export function formatGroup(group: Relation[]): string {
  return group.map(formatRelation).join(' | ');
}
