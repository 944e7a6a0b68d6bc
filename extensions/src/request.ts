/**
 * GET requests to the Polar TEP server extension (`<server>/polartep/api/<route>`), as the panels show them:
 * the answer, or one line saying what went wrong (the extension's own message when it sent one).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export type GetResult<T> = { ok: true; body: T } | { ok: false; message: string };

export async function getFromExtension<T>(route: string): Promise<GetResult<T>> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'polartep', 'api', route);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, { method: 'GET' }, settings);
  } catch (error) {
    return { ok: false, message: `the server extension could not be reached: ${String(error)}` };
  }
  let body: any = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: the status line says enough.
  }
  if (!response.ok) {
    const message = body && typeof body.message === 'string' ? body.message : `HTTP ${response.status}`;
    return { ok: false, message };
  }
  return { ok: true, body: body as T };
}
