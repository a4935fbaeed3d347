import { Body, Controller, Get, HttpCode, Inject, Param, Post, Res, StreamableFile } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiTags,
} from '@nestjs/swagger';
import { EntityManager } from '@mikro-orm/core';
import type { Response } from 'express';
import { Authenticated, CurrentPrincipal, type Principal, StationAllowed } from '@aperture/common/auth.decorators.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { conflict } from '@aperture/common/problem.js';
import { JobArtifact } from '@aperture/database/entities/job.entity.js';
import type { QrBatch } from '@aperture/database/entities/qr.entity.js';
import { STORAGE, type StoragePort } from '@aperture/storage/storage.port.js';
import { CreateQrBatchDto, QrBatchDto } from './qr.dto.js';
import { QrService } from './qr.service.js';

function toDto(b: QrBatch): QrBatchDto {
  const j = b.job;
  return {
    id: b.id,
    job_id: j.id,
    n: b.n,
    status: j.status,
    progress: Math.round(j.progress * 1000) / 10,
    error: j.error,
    pdf_url: j.status === 'completed' ? `/api/v1/qr/batches/${b.id}/pdf` : null,
    created_at: b.createdAt.toISOString(),
    finished_at: j.finishedAt?.toISOString() ?? null,
  };
}

@ApiTags('qr')
@Authenticated()
@StationAllowed()
@Controller('qr/batches')
export class QrController {
  constructor(
    private readonly qr: QrService,
    private readonly em: EntityManager,
    @Inject(STORAGE) private readonly storage: StoragePort,
  ) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({
    summary: 'Generate a batch of unique QR codes',
    description: 'Renders n (1-1000) unique codes into a print-ready PDF in the background. Poll the batch for progress.',
  })
  @ApiAcceptedResponse({ type: QrBatchDto })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'n outside 1..1000' })
  async createQrBatch(@Body() dto: CreateQrBatchDto, @CurrentPrincipal() p: Principal): Promise<QrBatchDto> {
    return toDto(await this.qr.create(dto.n, p));
  }

  @Get(':id')
  @ApiOperation({ summary: 'QR batch status and progress (0-100)' })
  @ApiOkResponse({ type: QrBatchDto })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Unknown batch' })
  async getQrBatch(@Param('id') id: string, @CurrentPrincipal() p: Principal): Promise<QrBatchDto> {
    return toDto(await this.qr.get(id, p));
  }

  @Get(':id/pdf')
  @ApiOperation({ summary: 'Download the batch PDF', description: 'Available once the batch has completed; 409 before that.' })
  @ApiProduces('application/pdf')
  @ApiOkResponse({ description: 'The PDF', schema: { type: 'string', format: 'binary' } })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Unknown batch' })
  @ApiConflictResponse({ type: ProblemDto, description: 'The PDF is not ready yet' })
  async getQrBatchPdf(
    @Param('id') id: string,
    @CurrentPrincipal() p: Principal,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile> {
    const batch = await this.qr.get(id, p);
    const job = batch.job;
    if (job.status !== 'completed') {
      const pct = Math.round(job.progress * 100);
      throw conflict(
        `The PDF of QR batch ${id} is not ready: the batch is ${job.status}${job.status === 'running' ? ` (${pct}% done)` : ''}.`,
      );
    }
    const pdf = await this.em.findOne(JobArtifact, { job: job.id, name: 'qr.pdf' });
    if (!pdf) throw conflict(`The PDF of QR batch ${id} is missing; re-create the batch.`);
    res.setHeader('Content-Disposition', `attachment; filename="qr-${batch.id}.pdf"`);
    return new StreamableFile(await this.storage.read(pdf.storageKey), { type: 'application/pdf', length: pdf.sizeBytes });
  }
}
