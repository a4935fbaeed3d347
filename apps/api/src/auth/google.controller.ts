import { Controller, Get, HttpCode, Post, Query, Req, Res } from '@nestjs/common';
import { ApiFoundResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiProperty, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { CookieOptions, Request, Response } from 'express';
import { Authenticated, CurrentPrincipal, type Principal, Public } from '@aperture/common/auth.decorators.js';
import { ProblemDto } from '@aperture/common/problem.dto.js';
import { GoogleAuthService, type GoogleStart, OAUTH_COOKIE, OAUTH_COOKIE_MAX_AGE_MS, OAUTH_COOKIE_PATH } from './google.service.js';

class GoogleLinkDto {
  @ApiProperty({ description: 'Send the browser here; Google sends it back to the callback, which links the account.' })
  authorization_url!: string;
}

const cookieOptions = (req: Request): CookieOptions => ({
  httpOnly: true,
  sameSite: 'lax',
  secure: req.secure,
  path: OAUTH_COOKIE_PATH,
});

/** One cookie's value from the Cookie header (no cookie parser needed for one name). */
function cookieOf(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

@ApiTags('auth')
@Controller('auth/google')
export class GoogleController {
  constructor(private readonly google: GoogleAuthService) {}

  private setCookie(req: Request, res: Response, start: GoogleStart): void {
    res.cookie(OAUTH_COOKIE, start.cookie, { ...cookieOptions(req), maxAge: OAUTH_COOKIE_MAX_AGE_MS });
  }

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
    const start = await this.google.start();
    this.setCookie(req, res, start);
    res.redirect(302, start.url);
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
  async link(@CurrentPrincipal() p: Principal, @Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<GoogleLinkDto> {
    const start = await this.google.start(p.userId);
    this.setCookie(req, res, start);
    return { authorization_url: start.url };
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
  async googleCallback(
    @Query('code') code: string | undefined,
    @Query('state') state: string | undefined,
    @Query('error') error: string | undefined,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    const target = await this.google.callback({ code, state, error, cookie: cookieOf(req, OAUTH_COOKIE) });
    res.clearCookie(OAUTH_COOKIE, cookieOptions(req));
    res.redirect(302, target);
  }
}
