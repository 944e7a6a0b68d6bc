/**
 * "Publish as app…": a command on the file browser's context menu of a folder or a Python file (and in the command
 * palette, where it applies to the file browser's selection) that asks for a title, the kind of app (a Panel app, or
 * a web app run as ASGI, WSGI or a static site) and its entry point, publishes the file or folder as a hosted app of
 * the user, then shows its stable address and the same sharing controls as a dashboard's.
 *
 * Everything goes through the server extension (`polartep/api/apps`), which reads the files from this server and
 * asks the platform service with the user's own token; the service checks the app again and decides whether the user
 * may publish it, and JupyterHub who may open it. This plugin only shows their answers.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, showDialog } from '@jupyterlab/apputils';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { Widget } from '@lumino/widgets';
import { SharingPanel } from './dashboards';
import { callExtension } from './request';

export const PUBLISH_APP_COMMAND = 'polartep:publish-app';

/** The kinds offered, as the service names them (`kind` and, for web apps, `runner`). */
const KINDS: { value: string; label: string; kind: string; runner?: string }[] = [
  { value: 'panel', label: 'Panel app (panel serve)', kind: 'panel' },
  { value: 'asgi', label: 'Web app, ASGI (module:attribute)', kind: 'web', runner: 'asgi' },
  { value: 'wsgi', label: 'Web app, WSGI (module:attribute)', kind: 'web', runner: 'wsgi' },
  { value: 'static', label: 'Static site (its .html index)', kind: 'web', runner: 'static' }
];

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text = ''): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

/** The entry point a file or folder suggests for a kind (the user may change it; the service checks it). */
export function suggestedEntry(path: string, isFolder: boolean, value: string): string {
  const name = path.split('/').pop() ?? '';
  if (isFolder) {
    return value === 'static' ? 'index.html' : value === 'panel' ? 'app.py' : 'app:app';
  }
  if ((value === 'asgi' || value === 'wsgi') && name.endsWith('.py')) {
    return `${name.slice(0, -3)}:app`;
  }
  return name;
}

/** Title, kind, entry point and description of the app to publish. */
class PublishAppForm extends Widget {
  readonly title_: HTMLInputElement;
  readonly kind: HTMLSelectElement;
  readonly entry: HTMLInputElement;
  readonly description: HTMLTextAreaElement;
  readonly status: HTMLParagraphElement;

  constructor(path: string, isFolder: boolean) {
    super();
    this.addClass('polartep-app-publish');
    const name = path.split('/').pop() ?? path;
    this.title_ = element('input', 'polartep-app-title');
    this.title_.value = name.replace(/\.py$/, '');
    this.title_.maxLength = 200;
    this.kind = element('select', 'polartep-app-kind');
    for (const option of KINDS) {
      const node = element('option', '', option.label);
      node.value = option.value;
      this.kind.append(node);
    }
    this.entry = element('input', 'polartep-app-entry');
    this.entry.value = suggestedEntry(path, isFolder, this.kind.value);
    this.kind.addEventListener('change', () => {
      this.entry.value = suggestedEntry(path, isFolder, this.kind.value);
    });
    this.description = element('textarea', 'polartep-app-description');
    this.description.rows = 3;
    this.description.maxLength = 2000;
    this.status = element('p', 'polartep-app-status');
    const labelled = (text: string, field: HTMLElement) => {
      const label = element('label', '', text);
      label.append(field);
      return label;
    };
    const what = isFolder ? `the files of the folder ${path}` : path;
    const intro = element('p', '', `Publish ${what} as a hosted app (frozen as saved now; the platform runs it).`);
    this.node.append(
      intro,
      labelled('Title', this.title_),
      labelled('Kind', this.kind),
      labelled('Entry point', this.entry),
      labelled('Description', this.description),
      this.status
    );
  }

  getValue(): { title: string; description: string; kind: string; runner?: string; entry: string } {
    const chosen = KINDS.find(option => option.value === this.kind.value) ?? KINDS[0];
    return {
      title: this.title_.value,
      description: this.description.value,
      kind: chosen.kind,
      ...(chosen.runner ? { runner: chosen.runner } : {}),
      entry: this.entry.value.trim()
    };
  }

  showError(message: string): void {
    this.status.textContent = message;
    this.node.dataset.state = 'error';
  }
}

/** Asks for the app's details until the service publishes it or the user cancels. */
export async function publishApp(path: string, isFolder: boolean): Promise<any | null> {
  const form = new PublishAppForm(path, isFolder);
  for (;;) {
    const result = await showDialog({
      title: 'Publish as app',
      body: form,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Publish' })]
    });
    if (!result.button.accept) {
      return null;
    }
    const answer = await callExtension('POST', 'apps', { path, ...form.getValue() });
    if (answer.ok) {
      await showDialog({
        title: 'App published',
        body: new SharingPanel(answer.body),
        buttons: [Dialog.okButton({ label: 'Done' })]
      });
      return answer.body;
    }
    form.showError(answer.message);
  }
}

/** The file or folder the command applies to: the one given, else the file browser's first selected item. */
function selection(browser: IFileBrowserFactory | null, args: any): { path: string; isFolder: boolean } | null {
  if (typeof args.path === 'string') {
    return { path: args.path, isFolder: Boolean(args.isFolder) };
  }
  for (const item of browser?.tracker.currentWidget?.selectedItems() ?? []) {
    return { path: item.path, isFolder: item.type === 'directory' };
  }
  return null;
}

const appsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'polartep-lab:apps',
  description: 'Publish a folder or a Python file as a Polar TEP hosted app and share it.',
  autoStart: true,
  optional: [ICommandPalette, IFileBrowserFactory],
  activate: (app: JupyterFrontEnd, palette: ICommandPalette | null, browser: IFileBrowserFactory | null) => {
    app.commands.addCommand(PUBLISH_APP_COMMAND, {
      label: 'Publish as app…',
      caption: 'Publish this folder or Python file as a hosted app (Panel or web) and share it',
      execute: async args => {
        const target = selection(browser, args);
        if (target === null) {
          await showDialog({
            title: 'Publish as app',
            body: "Select the app's folder or Python file in the file browser first.",
            buttons: [Dialog.okButton()]
          });
          return null;
        }
        return publishApp(target.path, target.isFolder);
      }
    });
    palette?.addItem({ command: PUBLISH_APP_COMMAND, category: 'Polar TEP' });
    for (const selector of ['.jp-DirListing-item[data-isdir="true"]', '.jp-DirListing-item[data-file-type="python"]']) {
      app.contextMenu.addItem({ command: PUBLISH_APP_COMMAND, selector, rank: 62 });
    }
  }
};

export default appsPlugin;
