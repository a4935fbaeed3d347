import { Readable } from 'node:stream';
import { Zip, ZipDeflate, ZipPassThrough } from 'fflate';

export interface ZipEntry {
  /** Name inside the archive (no directories, no '..'). */
  name: string;
  open: () => Promise<Readable>;
  /** Deflate it (text, JSON, CSV); already-compressed files (PNG, JPEG, ZIP) are stored as they are. */
  compress: boolean;
}

/** Whether a content type is worth deflating. */
export const compressible = (contentType: string): boolean => /^(text\/|application\/(json|xml|csv)|image\/svg)/.test(contentType);

/**
 * Streams a ZIP of the entries, one file at a time: memory stays at a chunk or two whatever the sizes, and the
 * consumer's pace drives the reads (the generator only resumes when the response asks for more).
 */
export function zipStream(entries: readonly ZipEntry[]): Readable {
  async function* generate(): AsyncGenerator<Uint8Array> {
    const out: Uint8Array[] = [];
    let failure: Error | null = null;
    const zip = new Zip((err, chunk) => {
      if (err) failure = err;
      else out.push(chunk);
    });
    const drain = function* (): Generator<Uint8Array> {
      if (failure) throw failure;
      while (out.length) yield out.shift()!;
    };
    for (const e of entries) {
      const file = e.compress ? new ZipDeflate(e.name, { level: 6 }) : new ZipPassThrough(e.name);
      zip.add(file);
      const src = await e.open();
      for await (const chunk of src) {
        file.push(chunk instanceof Uint8Array ? chunk : Buffer.from(chunk as string));
        yield* drain();
      }
      file.push(new Uint8Array(0), true);
      yield* drain();
    }
    zip.end();
    yield* drain();
  }
  return Readable.from(generate(), { objectMode: false });
}
