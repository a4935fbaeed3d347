import { applyDecorators, HttpStatus, UseInterceptors } from '@nestjs/common';
import { FileFieldsInterceptor } from '@nestjs/platform-express';
import { ApiBadRequestResponse, ApiBody, ApiConsumes, ApiCreatedResponse, ApiPayloadTooLargeResponse, ApiResponse } from '@nestjs/swagger';
import type { Response } from 'express';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { badRequest, ProblemException } from '@aperture/common/problem.js';
import { ImageDto, ImageUploadFormDto, ImageUploadReportDto } from './images.dto.js';
import type { StoreReport, UploadedImage } from './images.service.js';
import { ImageRejectedError, type InspectedImage, inspectImage } from '@aperture/imaging/inspect.js';
import { UPLOAD_413 } from '../uploads/upload-files.js';

/** The 400 problem for one upload that is not an acceptable image. */
export const imageProblem = (e: ImageRejectedError): ProblemException => new ProblemException(400, 'IMAGE_VALIDATION_ERROR', e.message);

/**
 * Checks one uploaded image by its content (an upload's temporary file, or bytes decoded from a JSON body); a file
 * Aperture does not accept is the 400 IMAGE_VALIDATION_ERROR problem. `hash: false` when the caller needs no sha256.
 */
export async function inspectUpload(
  src: Pick<UploadedImage, 'path'> | Buffer,
  maxSide: number,
  options: { hash?: boolean } = {},
): Promise<InspectedImage> {
  try {
    return await inspectImage(Buffer.isBuffer(src) ? src : src.path, maxSide, options);
  } catch (e) {
    if (e instanceof ImageRejectedError) throw imageProblem(e);
    throw e;
  }
}

/** A request names its image exactly one way: a multipart file, or the id of one of the caller's images. */
export function requireOneImageSource(file: unknown, imageId: string | undefined): void {
  if (file && imageId) {
    throw badRequest('Send either an image file or image_id, not both.', {
      errors: [{ field: 'image_id', messages: ['not with a file'] }],
    });
  }
  if (!file && !imageId) {
    throw badRequest('Send the image as the multipart field "image", or the id of one of your images as image_id.', {
      errors: [{ field: 'image', messages: ['image or image_id is required'] }],
    });
  }
}

/** Most files one upload request may carry. */
export const MAX_FILES_PER_UPLOAD = 20;

export type UploadedFields = { images?: UploadedImage[]; image?: UploadedImage[]; file?: UploadedImage[] } | undefined;

/**
 * Multipart "images" (several) and/or "image" (one), or "file" (one: the older clients' name), streamed to temporary
 * files, up to IMAGE_MAX_BYTES each.
 */
export const ImageUpload = (what: string): MethodDecorator =>
  applyDecorators(
    UseInterceptors(
      FileFieldsInterceptor([
        { name: 'images', maxCount: MAX_FILES_PER_UPLOAD },
        { name: 'image', maxCount: 1 },
        { name: 'file', maxCount: 1 },
      ]),
    ),
    ApiConsumes('multipart/form-data'),
    ApiBody({ type: ImageUploadFormDto }),
    ApiCreatedResponse({ type: ImageUploadReportDto, description: `Every file was stored as ${what}` }),
    ApiResponse({
      status: HttpStatus.MULTI_STATUS,
      type: ImageUploadReportDto,
      description: 'Some files were stored, the others are listed in bad_images with the reason',
    }),
    ApiBadRequestResponse({
      type: ProblemDto,
      description: 'No file was sent, or none was an acceptable image (IMAGE_VALIDATION_ERROR, with bad_images)',
    }),
    ApiPayloadTooLargeResponse({
      type: ProblemDto,
      description: `A file is larger than IMAGE_MAX_BYTES, more than ${MAX_FILES_PER_UPLOAD} files were sent, ${UPLOAD_413}`,
    }),
  );

export function uploadedFiles(fields: UploadedFields): UploadedImage[] {
  const files = [...(fields?.images ?? []), ...(fields?.image ?? []), ...(fields?.file ?? [])];
  if (files.length === 0) {
    throw badRequest('Send one or more image files as the multipart field "images".', {
      errors: [{ field: 'images', messages: ['at least one file is required'] }],
    });
  }
  return files;
}

/**
 * The upload answer, with the status telling the outcome: 201 all stored, 207 some stored (the others in
 * bad_images), 400 IMAGE_VALIDATION_ERROR none stored (problem+json that still carries bad_images).
 */
export function uploadReport(r: StoreReport, total: number, res: Response): ImageUploadReportDto {
  const bad = r.bad;
  if (r.stored.length === 0) {
    const detail =
      total === 1
        ? bad[0]!.reason
        : `None of the ${total} files is an acceptable image: ${bad.map((b) => `${b.name}: ${b.reason}`).join(' ')}`;
    throw new ProblemException(400, 'IMAGE_VALIDATION_ERROR', detail, { bad_images: bad });
  }
  res.status(bad.length ? HttpStatus.MULTI_STATUS : HttpStatus.CREATED);
  return {
    data: r.stored.map((i) => ImageDto.from(i)),
    error: bad.length > 0,
    error_msg: bad.length ? `${bad.length} of ${total} files were not stored` : '',
    bad_images: bad,
  };
}
