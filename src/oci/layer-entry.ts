import type { Readable } from 'node:stream';

/** Owner and permission bits of an entry; uid/gid default to 0 (root). */
interface EntryMeta {
  /** Path inside the image, relative, '/'-separated, no leading '/', no '.' or '..' segments. */
  path: string;
  /** Permission bits (including setuid/setgid/sticky); type bits are ignored. */
  mode?: number;
  uid?: number;
  gid?: number;
}

export interface FileEntry extends EntryMeta {
  type: 'file';
  size: number;
  /**
   * Opens the content. Called once, when the writer reaches this entry in sorted order, so a
   * layer of any size is written without holding file contents in memory. Must yield exactly
   * `size` bytes.
   */
  open: () => Readable | Promise<Readable> | Buffer;
}

export interface DirectoryEntry extends EntryMeta {
  type: 'directory';
}

export interface SymlinkEntry extends EntryMeta {
  type: 'symlink';
  /** Link target, stored as given (relative or absolute). */
  target: string;
}

export interface HardlinkEntry extends EntryMeta {
  type: 'hardlink';
  /** Path (same form as `path`) of a file entry in the same layer. */
  target: string;
}

/** One thing a layer holds. */
export type LayerEntry = FileEntry | DirectoryEntry | SymlinkEntry | HardlinkEntry;
