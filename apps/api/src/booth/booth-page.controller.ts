import { Controller, Get, Header, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiTags, ApiTooManyRequestsResponse } from '@nestjs/swagger';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import type { Response } from 'express';
import { Public } from '@aperture/common/auth.decorators.js';
import { REVIEW_PAGE_HTML, REVIEW_PAGE_JS } from './review-page.js';

/** The page allows only its own script, its own API and blob: images (the options, fetched with the station token). */
const PAGE_CSP =
  "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; " +
  "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/** The reviewer's page, outside the /api/v1 prefix (like /docs). */
@ApiTags('booth')
@ApiTooManyRequestsResponse({ type: ProblemDto, description: 'Rate limit of the client IP exceeded' })
@Public()
@Controller('booth')
export class BoothPageController {
  @Get('review')
  @Header('Cache-Control', 'no-cache')
  @ApiOperation({
    summary: "The reviewer's page",
    description: 'Sign in with the station password, review the options, confirm, retry or cancel.',
  })
  @ApiProduces('text/html')
  @ApiOkResponse({ description: 'The page', schema: { type: 'string' } })
  reviewPage(@Res({ passthrough: true }) res: Response): string {
    res.setHeader('Content-Security-Policy', PAGE_CSP);
    res.type('html');
    return REVIEW_PAGE_HTML;
  }

  @Get('review.js')
  @Header('Cache-Control', 'no-cache')
  @ApiOperation({ summary: "The reviewer's page script" })
  @ApiProduces('text/javascript')
  @ApiOkResponse({ description: 'The script', schema: { type: 'string' } })
  reviewScript(@Res({ passthrough: true }) res: Response): string {
    res.type('text/javascript');
    return REVIEW_PAGE_JS;
  }
}
