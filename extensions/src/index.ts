/**
 * Polar TEP in JupyterLab: a "Polar TEP" sidebar panel and a status-bar item with the user's plan, the server's
 * profile and the remaining plan period.
 *
 * Everything shown comes from the server extension's `GET <base URL>polartep/api/me` (Python package
 * `polartep_lab`), which asks the platform service with the user's own token. This plugin decides nothing: it
 * shows what the service says, and an error as the service (or the extension) worded it.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import { getFromExtension } from './request';
import { datasetsPlugin } from './datasets';
import { usagePlugin } from './usage';

import processorsPlugin from './processors';
import { runFormPlugin } from './runForm';
import dashboardsPlugin from './dashboards';
import appsPlugin from './apps';

/** The answer of `polartep/api/me` (see polartep_lab/handlers.py). */
export interface IPlatformMe {
  name: string;
  plan: string;
  plan_display_name: string;
  plan_started_at: string | null;
  plan_ends_at: string | null;
  plan_expired: boolean;
  profile: string | null;
  profiles: string[];
  subscriptions: string[];
  message: string | null;
}

type MeResult = { ok: true; me: IPlatformMe } | { ok: false; message: string };

const PANEL_ID = 'polartep-panel';
const DAY_MS = 24 * 60 * 60 * 1000;

const polarIcon = new LabIcon({
  name: 'polartep-lab:polar',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M12 2l2.4 5.6L20 10l-5.6 2.4L12 18l-2.4-5.6L4 10l5.6-2.4z"/>' +
    '<circle cx="12" cy="21" r="1.5"/></g></svg>'
});

/** The service writes UTC times, with or without an offset; read both as UTC. */
function parseTime(value: string): Date {
  return new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`);
}

/** "ends 2027-03-01 (90 days left)", "ended 2026-11-01", or "no end date". */
export function planPeriod(me: IPlatformMe, now: Date = new Date()): string {
  if (!me.plan_ends_at) {
    return 'no end date';
  }
  const ends = parseTime(me.plan_ends_at);
  const day = ends.toISOString().slice(0, 10);
  const left = ends.getTime() - now.getTime();
  if (me.plan_expired || left <= 0) {
    return `ended ${day}`;
  }
  const days = Math.ceil(left / DAY_MS);
  return `ends ${day} (${days} ${days === 1 ? 'day' : 'days'} left)`;
}

async function fetchMe(): Promise<MeResult> {
  const answer = await getFromExtension<IPlatformMe>('me');
  return answer.ok ? { ok: true, me: answer.body } : answer;
}

/** The sidebar panel: plan, profile, plan period, a refresh button. */
class PlatformPanel extends Widget {
  constructor() {
    super();
    this.id = PANEL_ID;
    this.addClass('polartep-panel');
    this.title.icon = polarIcon;
    this.title.caption = 'Polar TEP';
    this.node.innerHTML =
      '<h2>Polar TEP</h2>' +
      '<dl>' +
      '<dt>User</dt><dd class="polartep-user">…</dd>' +
      '<dt>Plan</dt><dd class="polartep-plan">…</dd>' +
      '<dt>Profile</dt><dd class="polartep-profile">…</dd>' +
      '<dt>Plan period</dt><dd class="polartep-period">…</dd>' +
      '</dl>' +
      '<p class="polartep-message" hidden></p>' +
      '<button type="button" class="polartep-refresh">Refresh</button>';
    this.node.querySelector('.polartep-refresh')!.addEventListener('click', () => this.onRefresh());
  }

  onRefresh: () => void = () => undefined;

  private setText(selector: string, text: string): HTMLElement {
    const element = this.node.querySelector(selector) as HTMLElement;
    element.textContent = text;
    return element;
  }

  render(result: MeResult): void {
    const message = this.node.querySelector('.polartep-message') as HTMLElement;
    if (!result.ok) {
      for (const field of ['user', 'plan', 'profile', 'period']) {
        this.setText(`.polartep-${field}`, '–');
      }
      message.hidden = false;
      message.className = 'polartep-message polartep-error';
      message.textContent = result.message;
      this.node.dataset.state = 'error';
      return;
    }
    const me = result.me;
    this.setText('.polartep-user', me.name);
    const plan = this.setText('.polartep-plan', me.plan_display_name || me.plan);
    plan.dataset.plan = me.plan;
    this.setText('.polartep-profile', me.profile || 'unknown');
    const period = this.setText('.polartep-period', planPeriod(me));
    period.classList.toggle('polartep-expired', me.plan_expired);
    message.hidden = !me.message;
    message.className = 'polartep-message';
    message.textContent = me.message || '';
    this.node.dataset.state = 'loaded';
  }
}

/** The status-bar item: "Polar TEP: Trial · interactive · 90 days left"; a click opens the panel. */
class PlatformStatus extends Widget {
  constructor(onClick: () => void) {
    super();
    this.addClass('polartep-status');
    this.addClass('jp-StatusBar-TextItem');
    this.node.title = 'Polar TEP: your plan and this server';
    this.node.textContent = 'Polar TEP';
    this.node.style.cursor = 'pointer';
    this.node.addEventListener('click', onClick);
  }

  render(result: MeResult): void {
    if (!result.ok) {
      this.node.textContent = 'Polar TEP: unavailable';
      this.node.title = result.message;
      return;
    }
    const me = result.me;
    const period = planPeriod(me).replace(/^ends \S+ \((.*)\)$/, '$1');
    const parts = [me.plan_display_name || me.plan, me.profile || 'unknown profile', period];
    this.node.textContent = `Polar TEP: ${parts.join(' · ')}`;
    this.node.title = `Plan ${me.plan}, profile ${me.profile || 'unknown'}, plan period: ${planPeriod(me)}`;
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'polartep-lab:plugin',
  description: "The Polar TEP panel and status-bar item: the user's plan, profile and plan period.",
  autoStart: true,
  optional: [IStatusBar],
  activate: (app: JupyterFrontEnd, statusBar: IStatusBar | null) => {
    const panel = new PlatformPanel();
    app.shell.add(panel, 'left', { rank: 900 });
    const status = new PlatformStatus(() => app.shell.activateById(PANEL_ID));
    if (statusBar) {
      statusBar.registerStatusItem('polartep-lab:status', { item: status, align: 'left', rank: 900 });
    }
    const refresh = async () => {
      const result = await fetchMe();
      panel.render(result);
      status.render(result);
    };
    panel.onRefresh = () => void refresh();
    // After the shell is restored, so the first load of JupyterLab never waits for the platform service.
    void app.restored.then(refresh);
  }
};

export default [plugin, processorsPlugin, usagePlugin, datasetsPlugin, runFormPlugin, dashboardsPlugin, appsPlugin];
