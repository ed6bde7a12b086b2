using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.CompilerServices;

namespace Billing.Tests.Design;

/// <summary>Design rules of Billing.Core, checked by reflection (as NodaTime does).</summary>
public sealed class DesignRulesTests
{
    private static readonly Assembly Core = typeof(Money).Assembly;

    private static readonly Type[] PublicTypes = Core.GetExportedTypes();

    [Fact]
    public void Public_classes_are_sealed_static_or_closed_abstract()
    {
        var open = PublicTypes
            .Where(t => t.IsClass && !t.IsSealed && !(t.IsAbstract && t.IsSealed))
            .Where(t => !t.IsAbstract || t.GetConstructors(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance)
                .Any(c => c.IsPublic || c.IsFamily))
            .Select(t => t.FullName);

        Assert.Empty(open);
    }

    [Fact]
    public void Public_structs_are_readonly()
    {
        var mutable = PublicTypes
            .Where(t => t.IsValueType && !t.IsEnum && t.GetCustomAttribute<IsReadOnlyAttribute>() is null)
            .Select(t => t.FullName);

        Assert.Empty(mutable);
    }

    [Fact]
    public void No_public_member_uses_floating_point()
    {
        Type[] floating = [typeof(float), typeof(double)];
        var offenders = new List<string>();
        foreach (var type in PublicTypes)
        {
            foreach (var member in type.GetMembers(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly))
            {
                var types = member switch
                {
                    MethodBase m => m.GetParameters().Select(p => p.ParameterType).Append((m as MethodInfo)?.ReturnType ?? typeof(void)),
                    PropertyInfo p => [p.PropertyType],
                    FieldInfo f => [f.FieldType],
                    _ => [],
                };
                if (types.Any(t => floating.Contains(t)))
                {
                    offenders.Add($"{type.Name}.{member.Name}");
                }
            }
        }

        Assert.Empty(offenders);
    }

    [Fact]
    public void Core_references_only_the_BCL_and_the_DI_and_Options_abstractions()
    {
        var allowed = new[] { "System.", "Microsoft.Extensions.DependencyInjection.Abstractions", "Microsoft.Extensions.Options", "Microsoft.Extensions.Primitives", "netstandard" };
        var references = Core.GetReferencedAssemblies().Select(a => a.Name!).ToArray();

        Assert.All(references, name => Assert.True(
            name == "System" || allowed.Any(a => name.StartsWith(a, StringComparison.Ordinal)),
            $"Billing.Core must not reference {name}"));
    }

    [Fact]
    public void Core_never_reads_an_ambient_clock()
    {
        var banned = new[]
        {
            typeof(DateTime).GetProperty(nameof(DateTime.Now))!.GetMethod!,
            typeof(DateTime).GetProperty(nameof(DateTime.UtcNow))!.GetMethod!,
            typeof(DateTime).GetProperty(nameof(DateTime.Today))!.GetMethod!,
            typeof(DateTimeOffset).GetProperty(nameof(DateTimeOffset.Now))!.GetMethod!,
            typeof(DateTimeOffset).GetProperty(nameof(DateTimeOffset.UtcNow))!.GetMethod!,
            typeof(TimeZoneInfo).GetProperty(nameof(TimeZoneInfo.Local))!.GetMethod!,
        };
        var calls = CalledMethods(Core).ToList();

        Assert.Contains(calls, c => c.Callee == typeof(TimeZoneInfo).GetMethod(nameof(TimeZoneInfo.ConvertTimeFromUtc))); // the scan sees calls
        Assert.Empty(calls.Where(c => banned.Contains(c.Callee)).Select(c => $"{c.Caller} calls {c.Callee.DeclaringType!.Name}.{c.Callee.Name}"));
    }

    private static IEnumerable<(string Caller, MethodBase Callee)> CalledMethods(Assembly assembly)
    {
        var oneByte = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Select(f => (OpCode)f.GetValue(null)!)
            .ToDictionary(o => unchecked((ushort)o.Value));
        foreach (var type in assembly.GetTypes())
        {
            foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly)
                .Cast<MethodBase>()
                .Concat(type.GetConstructors(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static)))
            {
                var il = method.GetMethodBody()?.GetILAsByteArray();
                if (il is null)
                {
                    continue;
                }

                for (var i = 0; i < il.Length;)
                {
                    ushort value = il[i] == 0xFE ? (ushort)(0xFE00 | il[i + 1]) : il[i];
                    var opcode = oneByte[value];
                    i += opcode.Size;
                    if (opcode.OperandType == OperandType.InlineMethod)
                    {
                        var token = BitConverter.ToInt32(il, i);
                        var callee = type.Module.ResolveMethod(token, type.IsGenericType ? type.GetGenericArguments() : null, method.IsGenericMethod ? method.GetGenericArguments() : null);
                        if (callee is not null)
                        {
                            yield return ($"{type.Name}.{method.Name}", callee);
                        }
                    }

                    i += OperandSize(opcode.OperandType, il, i);
                }
            }
        }
    }

    private static int OperandSize(OperandType operand, byte[] il, int at) => operand switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        OperandType.InlineSwitch => 4 + (BitConverter.ToInt32(il, at) * 4),
        _ => 4,
    };
}
