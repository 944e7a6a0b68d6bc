/**
 * Polar TEP usage in JupyterLab: a status-bar meter ("CPU-h 12.3 used · 487.7 left") and a "Usage this month"
 * section in the Polar TEP sidebar panel with the notices (80, 95, 100 percent), storage by class and a per-day bar
 * chart of this month's CPU-hours.
 *
 * The numbers come from the server extension's `GET <base URL>polartep/api/usage` (polartep_lab/handlers.py), which
 * asks the platform service with the user's own token. This plugin decides nothing: quotas are enforced by the
 * service, the hub and the gateway. Text is set with textContent, never as HTML.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';
import { getFromExtension } from './request';

/** One notice as the service lists it. */
export interface IUsageNotice {
  threshold: number;
  message: string;
  seen_at: string | null;
}

/** Storage of one class (present once the service meters storage). */
export interface IStorageClass {
  storage_class: string;
  display_name?: string;
  bytes: number;
  quota_bytes?: number | null;
}

/** The answer of `polartep/api/usage`. */
export interface IUsage {
  plan: string;
  allowance: number;
  used: number;
  left: number;
  renews_at: string | null;
  top_up: number;
  cpu_hours_by_day: { day: string; cpu_hours: number }[];
  notifications: IUsageNotice[];
  storage: IStorageClass[] | null;
}

type UsageResult = { ok: true; usage: IUsage } | { ok: false; message: string };

const PANEL_ID = 'polartep-panel';
const REFRESH_MS = 60 * 1000;

/** "CPU-h 12.3 used · 487.7 left" (left never below 0). */
export function meterText(usage: IUsage): string {
  return `CPU-h ${usage.used.toFixed(1)} used · ${Math.max(usage.left, 0).toFixed(1)} left`;
}

/** "1.50 GB" for bytes. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 2)} ${units[unit]}`;
}

async function fetchUsage(): Promise<UsageResult> {
  const answer = await getFromExtension<IUsage>('usage');
  return answer.ok ? { ok: true, usage: answer.body } : answer;
}

/** The status-bar meter; a click opens the Polar TEP panel. */
class UsageMeter extends Widget {
  constructor(onClick: () => void) {
    super();
    this.addClass('polartep-usage-meter');
    this.addClass('jp-StatusBar-TextItem');
    this.node.textContent = 'CPU-h …';
    this.node.style.cursor = 'pointer';
    this.node.addEventListener('click', onClick);
  }

  render(result: UsageResult): void {
    if (!result.ok) {
      this.node.textContent = 'CPU-h: unavailable';
      this.node.title = result.message;
      return;
    }
    const usage = result.usage;
    this.node.textContent = meterText(usage);
    this.node.dataset.exhausted = String(usage.left <= 0);
    const renews = usage.renews_at ? `renews ${usage.renews_at.slice(0, 10)}` : 'does not renew';
    this.node.title =
      `${usage.used.toFixed(2)} of ${usage.allowance.toFixed(2)} CPU-hours used this month, ${renews}` +
      (usage.top_up ? ` (includes a top-up of ${usage.top_up.toFixed(2)})` : '');
  }
}

/** The "Usage this month" section, appended to the Polar TEP panel's node. */
class UsageSection {
  readonly node: HTMLElement;

  constructor() {
    this.node = document.createElement('section');
    this.node.className = 'polartep-usage';
    const title = document.createElement('h3');
    title.textContent = 'Usage this month';
    this.node.appendChild(title);
  }

  private part(className: string, tag = 'div'): HTMLElement {
    let element = this.node.querySelector(`.${className}`) as HTMLElement | null;
    if (!element) {
      element = document.createElement(tag);
      element.className = className;
      this.node.appendChild(element);
    }
    element.replaceChildren();
    return element;
  }

  render(result: UsageResult): void {
    const summary = this.part('polartep-usage-summary', 'p');
    if (!result.ok) {
      summary.textContent = result.message;
      this.node.dataset.state = 'error';
      return;
    }
    const usage = result.usage;
    summary.textContent =
      `${usage.used.toFixed(2)} of ${usage.allowance.toFixed(2)} CPU-hours used, ` +
      `${Math.max(usage.left, 0).toFixed(2)} left`;
    const notices = this.part('polartep-usage-notices', 'ul');
    for (const notice of usage.notifications || []) {
      const item = document.createElement('li');
      item.className = notice.threshold >= 100 ? 'polartep-error' : 'polartep-warning';
      item.dataset.threshold = String(notice.threshold);
      item.textContent = notice.message;
      notices.appendChild(item);
    }
    const storage = this.part('polartep-usage-storage', 'dl');
    for (const entry of usage.storage || []) {
      const name = document.createElement('dt');
      name.textContent = entry.display_name || entry.storage_class;
      const value = document.createElement('dd');
      value.dataset.storageClass = entry.storage_class;
      value.textContent =
        formatBytes(entry.bytes) + (entry.quota_bytes ? ` of ${formatBytes(entry.quota_bytes)}` : '');
      storage.append(name, value);
    }
    const chart = this.part('polartep-usage-days');
    chart.setAttribute('role', 'img');
    chart.setAttribute('aria-label', 'CPU-hours per day this month');
    const days = usage.cpu_hours_by_day || [];
    const most = Math.max(0.01, ...days.map(d => d.cpu_hours));
    for (const day of days) {
      const bar = document.createElement('div');
      bar.className = 'polartep-usage-day';
      bar.title = `${day.day}: ${day.cpu_hours.toFixed(2)} CPU-hours`;
      bar.style.height = `${Math.max(1, Math.round((60 * day.cpu_hours) / most))}px`;
      chart.appendChild(bar);
    }
    this.node.dataset.state = 'loaded';
  }
}

export const usagePlugin: JupyterFrontEndPlugin<void> = {
  id: 'polartep-lab:usage',
  description: "This month's CPU-hours: a status-bar meter and a section of the Polar TEP panel.",
  autoStart: true,
  optional: [IStatusBar],
  activate: (app: JupyterFrontEnd, statusBar: IStatusBar | null) => {
    const meter = new UsageMeter(() => app.shell.activateById(PANEL_ID));
    if (statusBar) {
      statusBar.registerStatusItem('polartep-lab:usage', { item: meter, align: 'left', rank: 901 });
    }
    const section = new UsageSection();
    const refresh = async () => {
      const result = await fetchUsage();
      meter.render(result);
      section.render(result);
    };
    void app.restored.then(() => {
      // The panel is the main plugin's (index.ts); this section goes at its end once the shell holds it.
      for (const widget of app.shell.widgets('left')) {
        if (widget.id === PANEL_ID) {
          widget.node.appendChild(section.node);
        }
      }
      void refresh();
      window.setInterval(() => void refresh(), REFRESH_MS);
    });
  }
};
