/**
 * "Publish as processor": a command (command palette, File menu, file-browser context menu on notebooks, registered
 * by publishCommand.ts as "Publish as dashboard" is) that shows
 * the definition the platform infers from the notebook's `parameters` cell, lets the user edit it as JSON, checks it
 * live against the service (field by field, as a publish would) and publishes notebook and definition.
 *
 * Everything goes through the server extension (`polartep/api/processors`, `.../draft`, `.../validate`), which reads
 * the notebook from this server and asks the platform service with the user's own token. The service decides what
 * is valid and what the user may publish; this plugin only shows its answers.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, showDialog } from '@jupyterlab/apputils';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { Widget } from '@lumino/widgets';
import { addPublishCommand } from './publishCommand';
import { callExtension } from './request';

export const PUBLISH_COMMAND = 'polartep:publish-processor';


/** The dialog's body: the definition as JSON, and the problems the service finds in it (checked as you type). */
class DefinitionEditor extends Widget {
  readonly textarea: HTMLTextAreaElement;
  readonly problems: HTMLUListElement;
  readonly status: HTMLParagraphElement;
  private timer: number | undefined;
  private checks = 0;

  constructor(
    readonly path: string,
    definition: unknown
  ) {
    super();
    this.addClass('polartep-publish');
    const intro = document.createElement('p');
    intro.textContent = `Definition of ${path} (inferred from its parameters cell; edit as needed):`;
    this.textarea = document.createElement('textarea');
    this.textarea.className = 'polartep-publish-definition';
    this.textarea.rows = 24;
    this.textarea.cols = 80;
    this.textarea.spellcheck = false;
    this.textarea.value = JSON.stringify(definition, null, 2);
    this.status = document.createElement('p');
    this.status.className = 'polartep-publish-status';
    this.problems = document.createElement('ul');
    this.problems.className = 'polartep-publish-problems';
    this.node.append(intro, this.textarea, this.status, this.problems);
    this.textarea.addEventListener('input', () => this.scheduleCheck());
    void this.check();
  }

  getValue(): string {
    return this.textarea.value;
  }

  /** Show `message` above the problems (e.g. the service's refusal of a publish). */
  showError(message: string): void {
    this.status.textContent = message;
    this.node.dataset.state = 'invalid';
  }

  private scheduleCheck(): void {
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => void this.check(), 400);
  }

  private render(state: 'valid' | 'invalid' | 'checking', message: string, problems: string[] = []): void {
    this.node.dataset.state = state;
    this.status.textContent = message;
    this.problems.replaceChildren(
      ...problems.map(problem => {
        const item = document.createElement('li');
        item.textContent = problem;
        return item;
      })
    );
  }

  async check(): Promise<void> {
    const check = ++this.checks;
    let definition: unknown;
    try {
      definition = JSON.parse(this.textarea.value);
    } catch (error) {
      this.render('invalid', `Not valid JSON: ${String((error as Error).message || error)}`);
      return;
    }
    this.render('checking', 'Checking…');
    const answer = await callExtension('POST', 'processors/validate', { path: this.path, definition });
    if (check !== this.checks) {
      return; // a newer edit is being checked
    }
    if (!answer.ok) {
      this.render('invalid', answer.message);
    } else if (answer.body.valid) {
      this.render('valid', 'The definition is valid.');
    } else {
      this.render('invalid', 'The service finds these problems:', answer.body.problems as string[]);
    }
  }
}

/** Runs the dialog until the user publishes successfully or cancels. Returns the service's answer, if published. */
export async function publishNotebook(path: string): Promise<any | null> {
  const draft = await callExtension('POST', 'processors/draft', { path });
  if (!draft.ok) {
    await showDialog({ title: 'Publish as processor', body: draft.message, buttons: [Dialog.okButton()] });
    return null;
  }
  const editor = new DefinitionEditor(path, draft.body);
  for (;;) {
    const result = await showDialog({
      title: 'Publish as processor',
      body: editor,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Publish' })]
    });
    if (!result.button.accept) {
      return null;
    }
    let definition: unknown;
    try {
      definition = JSON.parse(editor.getValue());
    } catch (error) {
      editor.showError(`Not valid JSON: ${String((error as Error).message || error)}`);
      continue;
    }
    const answer = await callExtension('POST', 'processors', { path, definition });
    if (answer.ok) {
      const { id, version, sequence } = answer.body;
      await showDialog({
        title: 'Processor published',
        body: `${id} ${version} is published (version ${sequence}).`,
        buttons: [Dialog.okButton()]
      });
      return answer.body;
    }
    editor.showError(answer.message);
  }
}

const processorsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'polartep-lab:processors',
  description: 'Publish a notebook as a Polar TEP processor.',
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
        id: PUBLISH_COMMAND,
        label: 'Publish as processor…',
        caption: 'Publish this notebook as a Polar TEP processor',
        title: 'Publish as processor',
        menuRank: 40,
        contextRank: 60,
        publish: publishNotebook
      },
      palette,
      mainMenu,
      browser
    );
  }
};

export default processorsPlugin;
