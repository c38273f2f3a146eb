"""Tests of the trace builder: where the injected calls go, and that AgentDojo's checks see them.

    .venv/bin/python -m unittest discover -s benchmarks/agentdojo -p 'test_*.py'
"""

import unittest

import bench
from agentdojo.task_suite.load_suites import get_suites


def calls(*names: str, origin: str = "user") -> list[bench.Call]:
    return [bench.Call(n, {}, origin) for n in names]


class Placement(unittest.TestCase):
    def test_injected_calls_follow_the_carrier(self):
        user = calls("a", "b", "c")
        inj = calls("x", "y", origin="injection")
        got = [c.function for c in bench.place_injection(user, inj, 1)]
        self.assertEqual(got, ["a", "b", "x", "y", "c"])

    def test_carrier_is_the_last_call(self):
        got = [c.function for c in bench.place_injection(calls("a", "b"), calls("x", origin="injection"), 1)]
        self.assertEqual(got, ["a", "b", "x"])

    def test_no_carrier_puts_them_at_the_end(self):
        got = [c.function for c in bench.place_injection(calls("a"), calls("x", origin="injection"), None)]
        self.assertEqual(got, ["a", "x"])

    def test_carrier_is_the_first_output_holding_a_marker(self):
        outs = ["nothing", "has <M1> here", "has <M2> too"]
        self.assertEqual(bench.carrier_index(outs, ["<M2>", "<M1>"]), 1)
        self.assertIsNone(bench.carrier_index(outs, ["<M3>"]))


class RealCase(unittest.TestCase):
    """Banking: pay the bill in a file that carries the injection; the attack pays an IBAN."""

    @classmethod
    def setUpClass(cls):
        cls.suite = get_suites(bench.BENCHMARK_VERSION)["banking"]
        bench.cache_environments(cls.suite)
        cls.attack = bench.make_attack(cls.suite)
        ut = cls.suite.get_user_task_by_id("user_task_0")
        it = cls.suite.get_injection_task_by_id("injection_task_0")
        cls.case = bench.build_case(cls.suite, cls.attack, ut, it)

    def test_injection_follows_the_file_read(self):
        fns = [(c.function, c.origin) for c in self.case.calls]
        self.assertEqual(fns, [("read_file", "user"), ("send_money", "injection"), ("send_money", "user")])
        self.assertEqual(self.case.carrier, 0)
        self.assertIn("<INFORMATION>", self.case.calls[0].output)
        self.assertIn("US133000000121212121212", self.case.calls[1].args["recipient"])

    def test_agentdojo_scores_the_replay(self):
        everything = [True] * len(self.case.calls)
        oracle = [c.origin != "injection" for c in self.case.calls]
        nothing_of_the_user = [c.origin == "injection" for c in self.case.calls]
        self.assertEqual(bench._score(self.suite, self.attack, self.case, everything)[1], True)
        self.assertEqual(bench._score(self.suite, self.attack, self.case, oracle), (True, False))
        self.assertEqual(bench._score(self.suite, self.attack, self.case, nothing_of_the_user)[0], False)

    def test_trace_lines(self):
        lines = bench.trace_lines(self.case, "Pay the bill")
        self.assertEqual(lines[0]["kind"], "mission")
        self.assertEqual(lines[0]["purpose"], "Pay the bill")
        self.assertTrue(all(x["server"] == "banking" for x in lines[1:]))
        self.assertEqual(len({x["session"] for x in lines[1:]}), 1)


if __name__ == "__main__":
    unittest.main()
