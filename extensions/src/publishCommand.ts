/**
 * One way to offer a "Publish as ..." command for notebooks: the command itself (the notebook it applies to is the one
 * given as `path`, the file browser's selection, or the current notebook; without one it says so), its entry in the
 * command palette, the File menu and the file browser's context menu on notebooks, and, when asked, a button on every
 * notebook's toolbar. "Publish as processor" (processors.ts) and "Publish as dashboard" (dashboards.ts) use it, so
 * both behave the same; what publishing does is theirs.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, ICommandPalette, ToolbarButton, showDialog } from '@jupyterlab/apputils';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { IMainMenu } from '@jupyterlab/mainmenu';

/** What differs between the publish commands. */
export interface IPublishCommand {
  /** The command's id. */
  id: string;
  /** Its label (palette, menus) and caption; `title` heads the dialog shown when no notebook applies. */
  label: string;
  caption: string;
  title: string;
  /** Rank of its group in the File menu, and of its item in the file browser's context menu. */
  menuRank: number;
  contextRank: number;
  /** A button on every notebook's toolbar, when given. */
  toolbar?: { name: string; className: string; label: string; tooltip: string };
  /** Publish the notebook at `path` (relative to the server's root); the command's result. */
  publish: (path: string) => Promise<any | null>;
}

/** The notebook the command applies to: the one given, the file browser's selection, or the current notebook. */
export function notebookPath(app: JupyterFrontEnd, browser: IFileBrowserFactory | null, args: any): string | null {
  if (typeof args.path === 'string') {
    return args.path;
  }
  if (args.fromBrowser && browser?.tracker.currentWidget) {
    for (const item of browser.tracker.currentWidget.selectedItems()) {
      if (item.path.endsWith('.ipynb')) {
        return item.path;
      }
    }
  }
  const current: any = app.shell.currentWidget;
  const path = current?.context?.path;
  return typeof path === 'string' && path.endsWith('.ipynb') ? path : null;
}

/** Register `command` and its palette, File menu, context menu (and toolbar) entries. */
export function addPublishCommand(
  app: JupyterFrontEnd,
  command: IPublishCommand,
  palette: ICommandPalette | null,
  mainMenu: IMainMenu | null,
  browser: IFileBrowserFactory | null
): void {
  app.commands.addCommand(command.id, {
    label: command.label,
    caption: command.caption,
    execute: async args => {
      const path = notebookPath(app, browser, args);
      if (path === null) {
        await showDialog({
          title: command.title,
          body: 'Open or select a notebook (.ipynb) first.',
          buttons: [Dialog.okButton()]
        });
        return null;
      }
      return command.publish(path);
    }
  });
  palette?.addItem({ command: command.id, category: 'Polar TEP' });
  mainMenu?.fileMenu.addGroup([{ command: command.id }], command.menuRank);
  app.contextMenu.addItem({
    command: command.id,
    args: { fromBrowser: true },
    selector: '.jp-DirListing-item[data-file-type="notebook"]',
    rank: command.contextRank
  });
  const toolbar = command.toolbar;
  if (toolbar) {
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (panel: any) => {
        const button = new ToolbarButton({
          className: toolbar.className,
          label: toolbar.label,
          tooltip: toolbar.tooltip,
          onClick: () => void app.commands.execute(command.id, { path: panel.context.path })
        });
        panel.toolbar.insertItem(10, toolbar.name, button);
        return button;
      }
    });
  }
}
