/**
 * Requests to the Polar TEP server extension (`<server>/polartep/api/<route>`), the one way the panels, dialogs and
 * forms reach it: the answer, or one line saying what went wrong (the extension's own message when it sent one).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** What a call answered: `ok` and `status` as HTTP gave them, the JSON body (or null) and a message to show. */
export type Answer = { ok: boolean; status: number; body: any; message: string };

export type GetResult<T> = { ok: true; body: T } | { ok: false; message: string };

/** `method` on `polartep/api/<route>`, with `body` sent as JSON when given. */
export async function callExtension(method: string, route: string, body?: unknown): Promise<Answer> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'polartep', 'api', route);
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    return { ok: false, status: 0, body: null, message: `the server extension could not be reached: ${String(error)}` };
  }
  let answer: any = null;
  try {
    answer = await response.json();
  } catch {
    // Not JSON: the status says enough.
  }
  const message = answer && typeof answer.message === 'string' ? answer.message : `HTTP ${response.status}`;
  return { ok: response.ok, status: response.status, body: answer, message };
}

/** GET `polartep/api/<route>`: the body on success, the message otherwise. */
export async function getFromExtension<T>(route: string): Promise<GetResult<T>> {
  const answer = await callExtension('GET', route);
  return answer.ok ? { ok: true, body: answer.body as T } : { ok: false, message: answer.message };
}
