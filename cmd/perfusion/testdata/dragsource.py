"""A tiny GTK 3 window that offers one file as an XDND drag source.

Usage: python3 dragsource.py URI X Y

The smoke test starts it beside the app under Xvfb and drags from it with
xdotool (button down on it, move onto the app, button up). It prints
"ready" once shown, "drag-begin" and "drag-data-get" as GTK hands over the
file, and "drag-end" when the drag is over.
"""

import sys

import gi

gi.require_version("Gdk", "3.0")
gi.require_version("Gtk", "3.0")
from gi.repository import Gdk, Gtk  # noqa: E402


def say(word):
    print(word, flush=True)


def main():
    uri, x, y = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    win = Gtk.Window(title="perfusion-drag-source")
    win.set_default_size(140, 100)
    win.move(x, y)
    box = Gtk.EventBox()
    box.add(Gtk.Label(label="drag me"))
    win.add(box)
    box.drag_source_set(Gdk.ModifierType.BUTTON1_MASK, [], Gdk.DragAction.COPY)
    box.drag_source_add_uri_targets()
    box.connect("drag-begin", lambda *_: say("drag-begin"))
    box.connect("drag-data-get", lambda _w, _c, data, _i, _t: (data.set_uris([uri]), say("drag-data-get")))
    box.connect("drag-end", lambda *_: say("drag-end"))
    win.connect("destroy", Gtk.main_quit)
    win.connect("map-event", lambda *_: say("ready"))
    win.show_all()
    Gtk.main()


if __name__ == "__main__":
    main()
