"""The original Vaurien's test API, run as it stands."""
import unittest
from vaurien import Client, start_proxy, stop_proxy


class MyTest(unittest.TestCase):
    def setUp(self):
        self.proxy_pid = start_proxy(port=8080)
    def tearDown(self):
        stop_proxy(self.proxy_pid)
    def test_one(self):
        client = Client()
        with client.with_behavior('error', inject=True):
            pass   # the backend misbehaves here
        # back to normal here


class TheOriginalExampleDoesWhatItSays(unittest.TestCase):
    """The same setUp, with assertions on what the block changed."""

    def setUp(self):
        self.proxy_pid = start_proxy(port=8080)

    def tearDown(self):
        self.assertEqual(stop_proxy(self.proxy_pid), 0)

    def test_the_behavior_applies_in_the_block_and_not_after(self):
        client = Client()
        self.assertEqual(client.get_behavior(), "dummy")
        with client.with_behavior('error', inject=True):
            self.assertEqual(client.get_behavior(), "error")
            self.assertIs(client.get_behavior_options()["error"]["inject"], True)
        self.assertEqual(client.get_behavior(), "dummy")
        self.assertIn("delay", client.list_behaviors())
        with self.assertRaises(ValueError):
            client.set_behavior("nope")
