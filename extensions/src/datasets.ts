/**
 * The Polar TEP datasets panel: the datasets the user may see (class, size, access, project, where they are in
 * this server), and for members of the owning project: create, grant and revoke read access for another project,
 * delete (after a confirmation).
 *
 * Everything goes through the server extension (`polartep/api/datasets...`, polartep_lab/handlers.py), which calls
 * the platform service with the user's own token. This panel decides nothing: buttons are shown to members for
 * convenience, and the service refuses what the user may not do; its message is shown as it comes. Text is set with
 * textContent, never as HTML.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import { callExtension } from './request';
import { formatBytes } from './usage';

/** One dataset as the service lists it (data/api.py DatasetOut). */
export interface IDataset {
  project: string;
  name: string;
  title: string;
  storage_class: string;
  access: 'rw' | 'ro';
  mount_path: string | null;
  in_object_store?: boolean;
  granted_to: string[];
  bytes?: number | null;
}

/** The answer of `GET polartep/api/datasets`. */
export interface IDatasetsAnswer {
  datasets: IDataset[];
  projects: { name: string; your_role: string | null }[];
  storage_classes: { name: string; display_name: string }[];
}

const PANEL_ID = 'polartep-datasets';

const datasetsIcon = new LabIcon({
  name: 'polartep-lab:datasets',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<ellipse cx="12" cy="5" rx="8" ry="3"/><path d="M4 7v4c0 1.7 3.6 3 8 3s8-1.3 8-3V7c0 1.7-3.6 3-8 3S4 8.7 4 7z"/>' +
    '<path d="M4 13v4c0 1.7 3.6 3 8 3s8-1.3 8-3v-4c0 1.7-3.6 3-8 3s-8-1.3-8-3z"/></g></svg>'
});


/** Where the dataset is from this server: its folder in the home, or the notebook helper for the object store. */
export function whereText(dataset: IDataset): string {
  if (dataset.mount_path) {
    return `~/${dataset.mount_path}`;
  }
  return `object store: ObjectDataset(${JSON.stringify(dataset.project)}, ${JSON.stringify(dataset.name)})`;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

class DatasetsPanel extends Widget {
  private readonly message: HTMLParagraphElement;
  private readonly list: HTMLDivElement;
  private readonly nameInput: HTMLInputElement;
  private readonly classSelect: HTMLSelectElement;
  private readonly projectSelect: HTMLSelectElement;

  constructor() {
    super();
    this.id = PANEL_ID;
    this.addClass('polartep-datasets');
    this.title.icon = datasetsIcon;
    this.title.caption = 'Polar TEP datasets';
    this.node.appendChild(element('h2', '', 'Datasets'));
    this.message = element('p', 'polartep-datasets-message');
    this.message.hidden = true;
    this.message.setAttribute('role', 'status');
    this.node.appendChild(this.message);

    // One card per dataset: a sidebar is too narrow for a table of seven columns.
    this.list = element('div', 'polartep-datasets-list');
    this.node.appendChild(this.list);

    const form = element('form', 'polartep-datasets-create-form');
    form.appendChild(element('h3', '', 'New dataset'));
    this.nameInput = element('input', 'polartep-datasets-name');
    this.nameInput.placeholder = 'name (a-z, 0-9, _ and -)';
    this.nameInput.setAttribute('aria-label', 'dataset name');
    this.classSelect = element('select', 'polartep-datasets-class');
    this.classSelect.setAttribute('aria-label', 'storage class');
    this.projectSelect = element('select', 'polartep-datasets-project');
    this.projectSelect.setAttribute('aria-label', 'project');
    const create = element('button', 'polartep-datasets-create', 'Create');
    create.type = 'submit';
    form.append(this.nameInput, this.classSelect, this.projectSelect, create);
    form.addEventListener('submit', event => {
      event.preventDefault();
      void this.create();
    });
    this.node.appendChild(form);

    const refresh = element('button', 'polartep-datasets-refresh', 'Refresh');
    refresh.type = 'button';
    refresh.addEventListener('click', () => void this.refresh());
    this.node.appendChild(refresh);
  }

  private say(text: string, error: boolean): void {
    this.message.hidden = !text;
    this.message.textContent = text;
    this.message.classList.toggle('polartep-error', error);
  }

  async refresh(): Promise<void> {
    const answer = await callExtension('GET', 'datasets');
    if (!answer.ok) {
      this.say(answer.message, true);
      this.node.dataset.state = 'error';
      return;
    }
    this.render(answer.body as IDatasetsAnswer);
    this.node.dataset.state = 'loaded';
  }

  private fillSelect(select: HTMLSelectElement, options: { value: string; label: string }[]): void {
    const chosen = select.value;
    select.replaceChildren(
      ...options.map(option => {
        const node = element('option', '', option.label);
        node.value = option.value;
        return node;
      })
    );
    if (options.some(option => option.value === chosen)) {
      select.value = chosen;
    }
  }

  render(answer: IDatasetsAnswer): void {
    this.fillSelect(
      this.classSelect,
      answer.storage_classes.map(c => ({ value: c.name, label: c.display_name || c.name }))
    );
    this.fillSelect(
      this.projectSelect,
      answer.projects.filter(p => p.your_role).map(p => ({ value: p.name, label: p.name }))
    );
    this.list.replaceChildren();
    if (answer.datasets.length === 0) {
      this.list.appendChild(element('p', 'polartep-datasets-empty', 'No datasets you may see yet.'));
    }
    for (const dataset of answer.datasets) {
      this.list.appendChild(this.card(dataset));
    }
  }

  private card(dataset: IDataset): HTMLElement {
    const id = `${dataset.project}/${dataset.name}`;
    const card = element('section', 'polartep-dataset');
    card.dataset.dataset = id;
    card.title = dataset.title;
    card.appendChild(element('h3', 'polartep-dataset-name', dataset.name));
    const fields = element('dl', 'polartep-dataset-fields');
    const size = typeof dataset.bytes === 'number' ? formatBytes(dataset.bytes) : '–';
    for (const [label, part, text] of [
      ['Class', 'class', dataset.storage_class],
      ['Size', 'size', size],
      ['Access', 'access', dataset.access],
      ['Project', 'project', dataset.project],
      ['In this server', 'path', whereText(dataset)]
    ]) {
      fields.append(element('dt', '', label), element('dd', `polartep-dataset-${part}`, text));
    }
    card.appendChild(fields);
    const actions = element('div', 'polartep-dataset-actions');
    if (dataset.access === 'rw') {
      const grants = element('ul', 'polartep-dataset-grants');
      for (const grantee of dataset.granted_to) {
        const item = element('li', '', `read: ${grantee} `);
        item.dataset.grantee = grantee;
        const revoke = element('button', 'polartep-dataset-revoke', 'Revoke');
        revoke.type = 'button';
        revoke.title = `withdraw ${grantee}'s read access`;
        revoke.addEventListener('click', () => void this.change('DELETE', `${id}/grants/${grantee}`, `revoked ${grantee}'s read access to ${id}`));
        item.appendChild(revoke);
        grants.appendChild(item);
      }
      const grantee = element('input', 'polartep-dataset-grantee');
      grantee.placeholder = 'project to grant read access';
      grantee.setAttribute('aria-label', `project to grant read access to ${id}`);
      const grant = element('button', 'polartep-dataset-grant', 'Grant');
      grant.type = 'button';
      grant.addEventListener('click', () => {
        const name = grantee.value.trim();
        // encodeURIComponent: whatever is typed stays one path segment; the extension and service check the name.
        void this.change('PUT', `${id}/grants/${encodeURIComponent(name)}`, `granted ${name} read access to ${id}`);
      });
      const remove = element('button', 'polartep-dataset-delete', 'Delete');
      remove.type = 'button';
      remove.addEventListener('click', () => void this.remove(id));
      actions.append(grants, grantee, grant, remove);
    }
    card.appendChild(actions);
    return card;
  }

  private async change(method: string, path: string, done: string): Promise<void> {
    const answer = await callExtension(method, `datasets/${path}`);
    this.say(answer.ok ? done : answer.message, !answer.ok);
    if (answer.ok) {
      await this.refreshKeepingMessage();
    }
  }

  private async refreshKeepingMessage(): Promise<void> {
    const text = this.message.textContent || '';
    const error = this.message.classList.contains('polartep-error');
    await this.refresh();
    if (this.node.dataset.state === 'loaded') {
      this.say(text, error);
    }
  }

  private async remove(id: string): Promise<void> {
    const result = await showDialog({
      title: `Delete dataset ${id}?`,
      body: 'Its files or objects, grants and catalogue items are deleted for everyone. This cannot be undone.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!result.button.accept) {
      return;
    }
    await this.change('DELETE', id, `deleted ${id}`);
  }

  private async create(): Promise<void> {
    const body = {
      project: this.projectSelect.value,
      name: this.nameInput.value.trim(),
      storage_class: this.classSelect.value
    };
    const answer = await callExtension('POST', 'datasets', body);
    this.say(answer.ok ? `created ${body.project}/${body.name}` : answer.message, !answer.ok);
    if (answer.ok) {
      this.nameInput.value = '';
      await this.refreshKeepingMessage();
    }
  }
}

export const datasetsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'polartep-lab:datasets',
  description: 'The Polar TEP datasets panel: list, create, grant, revoke and delete datasets.',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    const panel = new DatasetsPanel();
    app.shell.add(panel, 'left', { rank: 905 });
    void app.restored.then(() => panel.refresh());
  }
};
