import { Controller, Get, HttpCode, Post, Req, Res } from '@nestjs/common';
import { ApiFoundResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiProperty, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { Authenticated, CurrentPrincipal, type Principal, Public } from '@aperture/common/auth.decorators.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { GoogleAuthService } from './google.service.js';
import { OAUTH_COOKIE, oauthCookieOptions } from './strategies/google.strategy.js';

class GoogleLinkDto {
  @ApiProperty({ description: 'Send the browser here; Google sends it back to the callback, which links the account.' })
  authorization_url!: string;
}

@ApiTags('auth')
@Controller('auth/google')
export class GoogleController {
  constructor(private readonly google: GoogleAuthService) {}

  @Get()
  @Public()
  @ApiOperation({
    summary: 'Start Google sign-in',
    description:
      'Redirects the browser to Google (authorization code flow with state and PKCE) and sets an HttpOnly, SameSite=Lax ' +
      'cookie that ties the sign-in to this browser: the callback completes only where the sign-in started.',
  })
  @ApiFoundResponse({ description: 'Redirect to the provider' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Google sign-in is not configured' })
  async googleLogin(@Req() req: Request, @Res() res: Response): Promise<void> {
    res.redirect(302, await this.google.start(req));
  }

  @Post('link')
  @HttpCode(200)
  @Authenticated()
  @ApiOperation({
    summary: 'Link a Google account to your account',
    description:
      'For an account that signs in with a password: answers the provider URL (and sets the same browser cookie as the ' +
      'sign-in); after Google, the callback links that Google account to you and signs you in. Google sign-in never ' +
      'links to an existing account by e-mail on its own, since nobody verified that the account owns the address.',
  })
  @ApiOkResponse({ type: GoogleLinkDto })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Google sign-in is not configured' })
  async link(@CurrentPrincipal() p: Principal, @Req() req: Request): Promise<GoogleLinkDto> {
    // The strategy's state store sets the browser cookie on this request's response.
    return { authorization_url: await this.google.start(req, p.userId) };
  }

  @Get('callback')
  @Public()
  @ApiOperation({
    summary: 'Google sign-in callback',
    description:
      'Signs in the user linked to the Google account (or links it, when started by POST /auth/google/link), or creates a ' +
      'new user, then redirects to FRONTEND_URL with #access_token=…&refresh_token=… (or #error=…&error_description=…). ' +
      'Needs the cookie set when the sign-in started.',
  })
  @ApiQuery({ name: 'code', required: false })
  @ApiQuery({ name: 'state', required: false })
  @ApiQuery({ name: 'error', required: false })
  @ApiFoundResponse({ description: 'Redirect to the front end, tokens or error in the URL fragment' })
  @ApiNotFoundResponse({ type: ProblemDto, description: 'Not configured' })
  async googleCallback(@Req() req: Request, @Res() res: Response): Promise<void> {
    const target = await this.google.callback(req);
    res.clearCookie(OAUTH_COOKIE, oauthCookieOptions(req));
    res.redirect(302, target);
  }
}
