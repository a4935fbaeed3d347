import { Body, Controller, Get, Param, Post, Res, StreamableFile } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { Authenticated, CurrentPrincipal, type Principal, StationAllowed } from '@aperture/common/auth.decorators.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import type { QrBatch } from '@aperture/database/entities/qr.entity.js';
import { CreateQrBatchDto, QrBatchDto } from './qr.dto.js';
import { QrService } from './qr.service.js';
import { JobAnswer, JobCreatingRoute } from '../jobs/prefer-wait.js';

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
  constructor(private readonly qr: QrService) {}

  @Post()
  @ApiOperation({
    summary: 'Generate a batch of unique QR codes',
    description: 'Renders n (1-1000) unique codes into a print-ready PDF in the background. Poll the batch for progress.',
  })
  @JobCreatingRoute({
    accepted: QrBatchDto,
    result: QrBatchDto,
    resultDescription: 'the batch as GET /qr/batches/{id} gives it: pdf_url once completed, error if it failed',
  })
  @ApiBadRequestResponse({ type: ProblemDto, description: 'n outside 1..1000' })
  async createQrBatch(@Body() dto: CreateQrBatchDto, @CurrentPrincipal() p: Principal): Promise<JobAnswer<QrBatchDto, QrBatchDto>> {
    const batch = await this.qr.create(dto.n, p);
    return new JobAnswer(toDto(batch), [batch.job.id], async (em) => toDto(await this.qr.get(batch.id, p, em)));
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
    const { batch, pdf, content } = await this.qr.pdf(id, p);
    res.setHeader('Content-Disposition', `attachment; filename="qr-${batch.id}.pdf"`);
    return new StreamableFile(content, { type: 'application/pdf', length: pdf.sizeBytes });
  }
}
