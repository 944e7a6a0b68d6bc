/**
 * "Publish as dashboard": a command (command palette, File menu, the notebook's toolbar, the file browser's context
 * menu on notebooks; registered by publishCommand.ts as "Publish as processor" is) that asks for a title and a description, publishes the notebook as a Voila dashboard of the
 * user, then shows its stable address and the sharing controls: share with a user or a project (its group), make a
 * link for anyone with a platform account, see who has access and revoke it.
 *
 * Everything goes through the server extension (`polartep/api/dashboards`, `.../<id>/shares`, `.../<id>/share-code`),
 * which reads the notebook from this server and asks the platform service with the user's own token. The service
 * and JupyterHub decide who may open what; this plugin only shows their answers.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, showDialog } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { Widget } from '@lumino/widgets';
import { addPublishCommand } from './publishCommand';
import { callExtension } from './request';

export const PUBLISH_DASHBOARD_COMMAND = 'polartep:publish-dashboard';


/** The dashboard's address as a browser opens it: the service's path below the hub's public address. */
function absolute(path: string): string {
  if (/^https?:\/\//.test(path)) {
    return path;
  }
  const hub = PageConfig.getOption('hubHost') || window.location.origin;
  return hub.replace(/\/$/, '') + path;
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text = ''): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

/** Title and description of the dashboard to publish. */
class PublishForm extends Widget {
  readonly title_: HTMLInputElement;
  readonly description: HTMLTextAreaElement;
  readonly status: HTMLParagraphElement;

  constructor(path: string) {
    super();
    this.addClass('polartep-dashboard-publish');
    this.title_ = element('input', 'polartep-dashboard-title');
    this.title_.value = path.split('/').pop()!.replace(/\.ipynb$/, '');
    this.title_.maxLength = 200;
    this.description = element('textarea', 'polartep-dashboard-description');
    this.description.rows = 4;
    this.description.maxLength = 2000;
    this.status = element('p', 'polartep-dashboard-status');
    const titleLabel = element('label', '', 'Title');
    titleLabel.append(this.title_);
    const descriptionLabel = element('label', '', 'Description');
    descriptionLabel.append(this.description);
    const intro = element('p', '', `Publish ${path} as a Voila dashboard (the notebook is frozen as it is saved now).`);
    this.node.append(intro, titleLabel, descriptionLabel, this.status);
  }

  getValue(): { title: string; description: string } {
    return { title: this.title_.value, description: this.description.value };
  }

  showError(message: string): void {
    this.status.textContent = message;
    this.node.dataset.state = 'error';
  }
}

/** The published dashboard's address and its sharing controls. */
export class SharingPanel extends Widget {
  private readonly list: HTMLUListElement;
  private readonly status: HTMLParagraphElement;
  private readonly link: HTMLParagraphElement;

  constructor(readonly dashboard: { id: string; url: string; title: string }) {
    super();
    this.addClass('polartep-dashboard-sharing');
    const address = element('p', 'polartep-dashboard-address', 'Address: ');
    const anchor = element('a', 'polartep-dashboard-url', absolute(dashboard.url));
    anchor.href = absolute(dashboard.url);
    anchor.target = '_blank';
    anchor.rel = 'noopener';
    address.append(anchor);

    const user = element('input', 'polartep-share-user');
    user.placeholder = 'user name';
    const shareUser = element('button', 'polartep-share-user-button jp-mod-styled', 'Share with user');
    shareUser.type = 'button';
    shareUser.addEventListener('click', () => void this.share({ user: user.value.trim() }));
    const project = element('input', 'polartep-share-group');
    project.placeholder = 'project group';
    const shareProject = element('button', 'polartep-share-group-button jp-mod-styled', 'Share with project');
    shareProject.type = 'button';
    shareProject.addEventListener('click', () => void this.share({ group: project.value.trim() }));
    const makeLink = element('button', 'polartep-share-link-button jp-mod-styled', 'Make a link');
    makeLink.type = 'button';
    makeLink.addEventListener('click', () => void this.makeLink());

    this.link = element('p', 'polartep-share-link');
    this.status = element('p', 'polartep-dashboard-status');
    this.list = element('ul', 'polartep-share-list');
    const rowUser = element('div', 'polartep-share-row');
    rowUser.append(user, shareUser);
    const rowProject = element('div', 'polartep-share-row');
    rowProject.append(project, shareProject);
    this.node.append(
      address,
      element('h3', '', 'Who has access'),
      this.list,
      rowUser,
      rowProject,
      makeLink,
      this.link,
      this.status
    );
    void this.refresh();
  }

  private say(message: string, state: 'ok' | 'error'): void {
    this.status.textContent = message;
    this.node.dataset.state = state;
  }

  async refresh(): Promise<void> {
    const answer = await callExtension('GET', `dashboards/${this.dashboard.id}/shares`);
    if (!answer.ok) {
      this.say(answer.message, 'error');
      return;
    }
    const shares: { kind: string; name: string }[] = answer.body.shares;
    this.list.replaceChildren(
      ...(shares.length
        ? shares.map(share => {
            const item = element('li', 'polartep-share', `${share.kind === 'group' ? 'project' : 'user'} ${share.name} `);
            item.dataset.kind = share.kind;
            item.dataset.name = share.name;
            const revoke = element('button', 'polartep-share-revoke jp-mod-styled', 'Revoke');
            revoke.type = 'button';
            revoke.addEventListener('click', () => void this.revoke(share.kind, share.name));
            item.append(revoke);
            return item;
          })
        : [element('li', 'polartep-share-none', 'Only you')])
    );
    this.node.dataset.shares = String(shares.length);
  }

  async share(target: { user?: string; group?: string }): Promise<void> {
    const answer = await callExtension('POST', `dashboards/${this.dashboard.id}/shares`, target);
    this.say(answer.ok ? `Shared with ${target.user ?? `project ${target.group}`}.` : answer.message, answer.ok ? 'ok' : 'error');
    await this.refresh();
  }

  async revoke(kind: string, name: string): Promise<void> {
    const plural = kind === 'group' ? 'groups' : 'users';
    const answer = await callExtension('DELETE', `dashboards/${this.dashboard.id}/shares/${plural}/${encodeURIComponent(name)}`);
    this.say(answer.ok ? `${name} no longer has access.` : answer.message, answer.ok ? 'ok' : 'error');
    await this.refresh();
  }

  async makeLink(): Promise<void> {
    const answer = await callExtension('POST', `dashboards/${this.dashboard.id}/share-code`, {});
    if (!answer.ok) {
      this.say(answer.message, 'error');
      return;
    }
    const url = absolute(answer.body.accept_url);
    this.link.replaceChildren(element('span', '', 'Anyone with a platform account who opens this link may open it: '));
    const anchor = element('a', 'polartep-share-link-url', url);
    anchor.href = url;
    anchor.target = '_blank';
    anchor.rel = 'noopener';
    this.link.append(anchor);
    this.say('Link made.', 'ok');
  }
}

/** Asks for title and description until the service publishes the notebook or the user cancels. */
export async function publishDashboard(path: string): Promise<any | null> {
  const form = new PublishForm(path);
  for (;;) {
    const result = await showDialog({
      title: 'Publish as dashboard',
      body: form,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Publish' })]
    });
    if (!result.button.accept) {
      return null;
    }
    const answer = await callExtension('POST', 'dashboards', { path, ...form.getValue() });
    if (answer.ok) {
      await showDialog({
        title: 'Dashboard published',
        body: new SharingPanel(answer.body),
        buttons: [Dialog.okButton({ label: 'Done' })]
      });
      return answer.body;
    }
    form.showError(answer.message);
  }
}

const dashboardsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'polartep-lab:dashboards',
  description: 'Publish a notebook as a Polar TEP dashboard and share it.',
  autoStart: true,
  optional: [ICommandPalette, IMainMenu, IFileBrowserFactory],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    mainMenu: IMainMenu | null,
    browser: IFileBrowserFactory | null
  ) => {
    addPublishCommand(
      app,
      {
        id: PUBLISH_DASHBOARD_COMMAND,
        label: 'Publish as dashboard…',
        caption: 'Publish this notebook as a Voila dashboard and share it',
        title: 'Publish as dashboard',
        menuRank: 41,
        contextRank: 61,
        toolbar: {
          name: 'polartepPublishDashboard',
          className: 'polartep-publish-dashboard-button',
          label: 'Dashboard',
          tooltip: 'Publish as dashboard'
        },
        publish: publishDashboard
      },
      palette,
      mainMenu,
      browser
    );
  }
};

export default dashboardsPlugin;
