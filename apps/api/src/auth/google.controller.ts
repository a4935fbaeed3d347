import { Controller, Get, Query, Res } from '@nestjs/common';
import { ApiFoundResponse, ApiNotFoundResponse, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { Public } from '@aperture/common/auth.decorators.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { GoogleAuthService } from './google.service.js';

@ApiTags('auth')
@Public()
@Controller('auth/google')
export class GoogleController {
  constructor(private readonly google: GoogleAuthService) {}

  @Get()
  @ApiOperation({
    summary: 'Start Google sign-in',
    description: 'Redirects the browser to Google (authorization code flow with state and PKCE).',
  })
  @ApiFoundResponse({ description: 'Redirect to the provider' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Google sign-in is not configured' })
  async googleLogin(@Res() res: Response): Promise<void> {
    res.redirect(302, await this.google.authorizationUrl());
  }

  @Get('callback')
  @ApiOperation({
    summary: 'Google sign-in callback',
    description:
      'Links the Google account to the user with the same verified e-mail, or creates one, then redirects to FRONTEND_URL with ' +
      '#access_token=…&refresh_token=… (or #error=…&error_description=…).',
  })
  @ApiQuery({ name: 'code', required: false })
  @ApiQuery({ name: 'state', required: false })
  @ApiQuery({ name: 'error', required: false })
  @ApiFoundResponse({ description: 'Redirect to the front end, tokens or error in the URL fragment' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Not configured' })
  async googleCallback(
    @Query('code') code: string | undefined,
    @Query('state') state: string | undefined,
    @Query('error') error: string | undefined,
    @Res() res: Response,
  ): Promise<void> {
    res.redirect(302, await this.google.callback({ code, state, error }));
  }
}
