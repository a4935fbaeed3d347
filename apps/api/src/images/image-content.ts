import { Inject, Injectable, StreamableFile } from '@nestjs/common';
import type { Request, Response } from 'express';
import { notModified } from '@aperture/common/etag.js';
import type { Image } from '@aperture/database/entities/image.entity.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';

/** Sends an image's bytes with its MIME type, a strong ETag (its SHA-256) and conditional GET. */
@Injectable()
export class ImageContent {
  constructor(@Inject(STORAGE) private readonly storage: StoragePort) {}

  async send(image: Image, req: Request, res: Response): Promise<StreamableFile | undefined> {
    if (notModified(req, res, `"${image.sha256}"`)) return undefined;
    const safe = image.originalName.replace(/[^\w.-]/g, '_');
    res.setHeader('Content-Disposition', `inline; filename="${safe}"`);
    return new StreamableFile(await this.storage.read(image.storageKey), { type: image.mime, length: image.sizeBytes });
  }
}
