"""The read side: what each page shows, one module per page.

A page module builds its context and renders the fragments that both its view (first render)
and its websocket consumer (live re-renders) send, so each fragment is rendered in one place.
Pages read the database; they never write it (state changes are ``runs.actions``), and they
import neither views nor consumers: views and consumers import pages.
"""
